"""Recurring series: one range repeated daily or weekly at the place's local wall time, each
occurrence its own booking (all or nothing unless `allow_partial`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.schemas_workflows import SeriesIn, SeriesOut
from gateway.entrypoints.security import Principal, authenticated, gateway_of, request_id
from gateway.entrypoints.timestamps import time_range, timestamp
from reserva.booking.v1 import booking_pb2 as bk

router = APIRouter(tags=["bookings"])
_FREQUENCY = {"DAILY": bk.Recurrence.DAILY, "WEEKLY": bk.Recurrence.WEEKLY}


@router.post(
    "/v1/bookings:createRecurring",
    status_code=201,
    response_model=SeriesOut,
    response_model_exclude_unset=True,
    summary="Book a series of occurrences of one range (INSTANT places; each occurrence paid)",
)
async def create_recurring_bookings(
    body: SeriesIn, request: Request, _: Principal = Depends(authenticated), key: str = Depends(request_id)
) -> dict[str, Any]:
    recurrence = bk.Recurrence(frequency=_FREQUENCY[body.recurrence.frequency], count=body.recurrence.count or 0)
    if body.recurrence.until is not None:
        recurrence.until.CopyFrom(timestamp(body.recurrence.until, "recurrence.until"))
    create = bk.CreateRecurringBookingsRequest(
        request_id=key,
        place_id=body.place_id,
        first_occurrence=time_range(body.first_occurrence.start_time, body.first_occurrence.end_time),
        recurrence=recurrence,
        guests=body.guests,
        units=body.units,
        payment_method_token=body.payment_method_token,
        note=body.note,
        allow_partial=body.allow_partial,
    )
    result = await gateway_of(request).peers.booking.call("CreateRecurringBookings", create)
    return to_json(result)
