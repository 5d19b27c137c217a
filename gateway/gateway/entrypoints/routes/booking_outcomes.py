"""How a confirmed booking ends when it is not cancelled: the host marks a no-show once it has
started, an agent completes it once it has ended (the booking service's sweeper does the same on its
own). The booking service decides who may and when; the roles here only turn away the obvious."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.responses import BookingOut
from gateway.entrypoints.schemas import Uuid
from gateway.entrypoints.schemas_workflows import NoShowIn
from gateway.entrypoints.security import Principal, agent_only, gateway_of, host_or_agent, request_id
from reserva.booking.v1 import booking_pb2 as bk

router = APIRouter(tags=["bookings"])


@router.post(
    "/v1/bookings/{booking_id}:markNoShow",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Host: mark a confirmed booking that has started as a no-show (no refund)",
)
async def mark_no_show(
    booking_id: Uuid,
    request: Request,
    body: NoShowIn | None = None,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    mark = bk.MarkNoShowRequest(request_id=key, id=booking_id, reason=body.reason if body else "")
    return to_json(await gateway_of(request).peers.booking.call("MarkNoShow", mark))


@router.post(
    "/v1/bookings/{booking_id}:complete",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Agents: complete a confirmed booking that has ended (captures any outstanding balance)",
)
async def complete_booking(
    booking_id: Uuid, request: Request, _: Principal = Depends(agent_only), key: str = Depends(request_id)
) -> dict[str, Any]:
    complete = bk.CompleteBookingRequest(request_id=key, id=booking_id)
    return to_json(await gateway_of(request).peers.booking.call("CompleteBooking", complete))
