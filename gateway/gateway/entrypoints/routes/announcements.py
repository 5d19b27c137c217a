"""Agents: announcements to many users (delivered in the background; GET shows the progress)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.schemas import Uuid
from gateway.entrypoints.schemas_workflows import AnnouncementIn, AnnouncementOut
from gateway.entrypoints.security import Principal, agent_only, gateway_of, request_id
from reserva.notifications.v1 import notifications_pb2 as nt

router = APIRouter(tags=["announcements"])
# The notifications service calls agents operators.
_ROLE_TO_PROTO = {"client": nt.ROLE_CLIENT, "host": nt.ROLE_HOST, "agent": nt.ROLE_OPERATOR}
_ROLE_FROM_PROTO = {v: k for k, v in _ROLE_TO_PROTO.items()}


def _announcement(a: nt.Announcement) -> dict[str, Any]:
    body = to_json(a)
    body["filter"] = {
        "roles": [_ROLE_FROM_PROTO[r] for r in a.filter.roles if r in _ROLE_FROM_PROTO],
        "user_ids": list(a.filter.user_ids),
    }
    return body


@router.post(
    "/v1/announcements",
    status_code=201,
    response_model=AnnouncementOut,
    response_model_exclude_unset=True,
    summary="Agents: send a message to every user matching the filter (state PENDING; delivery runs after)",
)
async def send_announcement(
    body: AnnouncementIn, request: Request, _: Principal = Depends(agent_only), key: str = Depends(request_id)
) -> dict[str, Any]:
    audience = body.filter
    send = nt.SendAnnouncementRequest(
        request_id=key,
        subject=body.subject,
        body=body.body,
        filter=nt.AnnouncementFilter(
            roles=[_ROLE_TO_PROTO[r] for r in dict.fromkeys(audience.roles)] if audience else [],
            user_ids=audience.user_ids if audience else [],
        ),
    )
    return _announcement(await gateway_of(request).peers.notifications.call("SendAnnouncement", send))


@router.get(
    "/v1/announcements/{announcement_id}",
    response_model=AnnouncementOut,
    response_model_exclude_unset=True,
    summary="Agents: one announcement with its delivery progress",
)
async def get_announcement(
    announcement_id: Uuid, request: Request, _: Principal = Depends(agent_only)
) -> dict[str, Any]:
    query = nt.GetAnnouncementRequest(id=announcement_id)
    return _announcement(await gateway_of(request).peers.notifications.call("GetAnnouncement", query))
