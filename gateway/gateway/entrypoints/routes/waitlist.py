"""Waitlist: a client waits for a taken range of a place and is offered a short hold when it frees
up; hosts see their places' waitlists, agents everyone's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.schemas import Uuid
from gateway.entrypoints.schemas_workflows import WaitlistEntryOut, WaitlistIn, WaitlistPageOut, WaitlistStateFilter
from gateway.entrypoints.security import Principal, authenticated, gateway_of, request_id
from gateway.entrypoints.timestamps import time_range
from reserva.booking.v1 import booking_pb2 as bk

router = APIRouter(tags=["waitlist"])


@router.post(
    "/v1/waitlist",
    status_code=201,
    response_model=WaitlistEntryOut,
    response_model_exclude_unset=True,
    summary="Wait for a taken range of a place (a free one is 409 SLOT_AVAILABLE); offered a hold when it frees up",
)
async def join_waitlist(
    body: WaitlistIn, request: Request, _: Principal = Depends(authenticated), key: str = Depends(request_id)
) -> dict[str, Any]:
    join = bk.JoinWaitlistRequest(
        request_id=key,
        place_id=body.place_id,
        range=time_range(body.range.start_time, body.range.end_time),
        guests=body.guests,
        units=body.units,
    )
    return to_json(await gateway_of(request).peers.booking.call("JoinWaitlist", join))


@router.get(
    "/v1/waitlist",
    response_model=WaitlistPageOut,
    response_model_exclude_unset=True,
    summary="Waitlist entries of a place (its host, agents) or of a client (the caller by default)",
)
async def list_waitlist(
    request: Request,
    place_id: Uuid | None = None,
    client_id: Uuid | None = None,
    state: list[WaitlistStateFilter] = Query(default=[], max_length=5, description="Default: WAITING and OFFERED"),
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    principal: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = bk.ListWaitlistRequest(
        place_id=place_id or "",
        client_id=client_id or ("" if place_id else principal.user_id),
        states=[bk.WaitlistEntry.State.Value(s) for s in state],
        page_size=page_size,
        page_token=decode_cursor("waitlist", page_token),
    )
    reply = await gateway_of(request).peers.booking.call("ListWaitlist", query)
    return {
        "entries": [to_json(e) for e in reply.entries],
        "next_page_token": encode_cursor("waitlist", reply.next_page_token),
    }


@router.post(
    "/v1/waitlist/{entry_id}:leave",
    response_model=WaitlistEntryOut,
    response_model_exclude_unset=True,
    summary="Leave the waitlist (its client)",
)
async def leave_waitlist(
    entry_id: Uuid, request: Request, _: Principal = Depends(authenticated), key: str = Depends(request_id)
) -> dict[str, Any]:
    leave = bk.LeaveWaitlistRequest(request_id=key, id=entry_id)
    return WaitlistEntryOut.model_validate(
        to_json(await gateway_of(request).peers.booking.call("LeaveWaitlist", leave))
    )
