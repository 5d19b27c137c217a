"""The caller's notifications (history, mark read) and notification preferences."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from google.protobuf import field_mask_pb2

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import from_json, to_json
from gateway.entrypoints.responses import MarkReadOut, NotificationPageOut, PreferencesOut
from gateway.entrypoints.schemas import MarkReadIn, PreferencesPatch, Uuid
from gateway.entrypoints.security import Principal, authenticated, gateway_of, request_id
from kit.errors import InvalidArgument
from reserva.notifications.v1 import notifications_pb2 as nt

router = APIRouter(tags=["notifications"])


@router.get(
    "/v1/notifications",
    response_model=NotificationPageOut,
    response_model_exclude_unset=True,
    summary="The caller's notifications, newest first (agents: any user's)",
)
async def list_notifications(
    request: Request,
    user_id: Uuid | None = None,
    unread_only: bool = False,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    principal: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = nt.ListNotificationsRequest(
        user_id=user_id or principal.user_id,
        unread_only=unread_only,
        page_size=page_size,
        page_token=decode_cursor("notifications", page_token),
    )
    reply = await gateway_of(request).peers.notifications.call("ListNotifications", query)
    return {
        "notifications": [to_json(n) for n in reply.notifications],
        "unread_count": reply.unread_count,
        "next_page_token": encode_cursor("notifications", reply.next_page_token),
    }


@router.post(
    "/v1/notifications:markRead",
    response_model=MarkReadOut,
    response_model_exclude_unset=True,
    summary="Mark the caller's notifications read (all when ids is empty)",
)
async def mark_read(
    body: MarkReadIn, request: Request, principal: Principal = Depends(authenticated), key: str = Depends(request_id)
) -> dict[str, int]:
    mark = nt.MarkNotificationsReadRequest(request_id=key, user_id=principal.user_id, ids=body.ids)
    reply = await gateway_of(request).peers.notifications.call("MarkNotificationsRead", mark)
    return {"marked_count": reply.marked_count}


@router.get(
    "/v1/notifications/preferences",
    response_model=PreferencesOut,
    response_model_exclude_unset=True,
    summary="The caller's notification preferences",
)
async def get_preferences(request: Request, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    query = nt.GetPreferencesRequest(user_id=principal.user_id)
    return to_json(await gateway_of(request).peers.notifications.call("GetPreferences", query))


@router.patch(
    "/v1/notifications/preferences",
    response_model=PreferencesOut,
    response_model_exclude_unset=True,
    summary="Change the caller's notification preferences",
)
async def update_preferences(
    body: PreferencesPatch,
    request: Request,
    principal: Principal = Depends(authenticated),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    values = body.model_dump(mode="json", exclude_none=True)
    if not values:
        raise InvalidArgument("nothing to update: send at least one field", reason="INVALID_UPDATE_MASK")
    preferences = from_json(values, nt.Preferences())
    preferences.user_id = principal.user_id
    update = nt.UpdatePreferencesRequest(
        request_id=key, preferences=preferences, update_mask=field_mask_pb2.FieldMask(paths=sorted(values))
    )
    return to_json(await gateway_of(request).peers.notifications.call("UpdatePreferences", update))
