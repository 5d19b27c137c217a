"""Bookings: create, list, details, and the custom verbs (approve, reject, cancel, reschedule,
confirm); payments of a booking. Lists embed place summaries with one batched GetPlaces call."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.responses import BookingDetailsOut, BookingOut, BookingPageOut, PaymentPageOut
from gateway.entrypoints.routes.places import _etag, _range
from gateway.entrypoints.schemas import BookingIn, ConfirmIn, ReasonIn, RescheduleIn, Uuid
from gateway.entrypoints.security import Principal, authenticated, gateway_of, host_or_agent, request_id
from kit.errors import ReservaError
from kit.identity import SYSTEM
from reserva.availability.v1 import availability_pb2 as av
from reserva.booking.v1 import booking_pb2 as bk
from reserva.payments.v1 import payments_pb2 as pay

log = logging.getLogger("reserva.gateway.bookings")
router = APIRouter(tags=["bookings"])
IfMatch = Header(default=None, alias="If-Match", max_length=200, description="The booking's etag")
Status = Literal[
    "REQUESTED", "APPROVED", "HELD", "CONFIRMED", "REJECTED", "CANCELLED", "EXPIRED", "PAYMENT_FAILED",
    "COMPLETED", "NO_SHOW",
]  # fmt: skip
OrderBy = Literal["start_time", "start_time desc", "create_time", "create_time desc", "update_time", "update_time desc"]


async def _place_summaries(request: Request, place_ids: list[str]) -> dict[str, dict[str, Any]]:
    """One GetPlaces call for a whole page; a failure leaves the summaries out, never the bookings."""
    ids = list(dict.fromkeys(p for p in place_ids if p))[:100]
    if not ids:
        return {}
    try:
        reply = await gateway_of(request).peers.availability.call("GetPlaces", av.GetPlacesRequest(ids=ids))
    except ReservaError as error:
        log.warning("place summaries unavailable", extra={"reason": error.reason})
        return {}
    return {p.id: {"id": p.id, "title": p.title, "city": p.city, "time_zone": p.time_zone} for p in reply.places}


def _with_place(booking: bk.Booking, places: dict[str, dict[str, Any]]) -> dict[str, Any]:
    body = to_json(booking)
    body["place"] = places.get(booking.place_id)
    return body


def _ranges(items) -> list:
    return [_range(r.start_time, r.end_time) for r in items]


@router.post(
    "/v1/bookings",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    status_code=201,
    summary="Book a place (INSTANT: paid and confirmed; REQUEST: asked)",
)
async def create_booking(
    body: BookingIn, request: Request, _: Principal = Depends(authenticated), key: str = Depends(request_id)
) -> dict[str, Any]:
    create = bk.CreateBookingRequest(
        request_id=key,
        place_id=body.place_id,
        ranges=_ranges(body.ranges),
        guests=body.guests,
        units=body.units,
        payment_method_token=body.payment_method_token,
        note=body.note,
        waitlist_entry_id=body.waitlist_entry_id or "",
    )
    return to_json(await gateway_of(request).peers.booking.call("CreateBooking", create))


@router.get(
    "/v1/bookings",
    response_model=BookingPageOut,
    response_model_exclude_unset=True,
    summary="Bookings the caller may see (own, their places', or all for agents)",
)
async def list_bookings(
    request: Request,
    client_id: Uuid | None = None,
    host_id: Uuid | None = None,
    place_id: Uuid | None = None,
    status: list[Status] = Query(default=[], max_length=10),
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    order_by: OrderBy = "start_time",
    view: Literal["BASIC", "FULL"] = "BASIC",
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = bk.ListBookingsRequest(
        client_id=client_id or "",
        host_id=host_id or "",
        place_id=place_id or "",
        statuses=[bk.Booking.Status.Value(s) for s in status],
        order_by=order_by,
        page_size=page_size,
        page_token=decode_cursor("bookings", page_token),
        view=bk.BOOKING_VIEW_FULL if view == "FULL" else bk.BOOKING_VIEW_BASIC,
    )
    if start_time and end_time:
        query.time_range.CopyFrom(_range(start_time, end_time))
    reply = await gateway_of(request).peers.booking.call("ListBookings", query)
    places = await _place_summaries(request, [b.place_id for b in reply.bookings])
    return {
        "bookings": [_with_place(b, places) for b in reply.bookings],
        "next_page_token": encode_cursor("bookings", reply.next_page_token),
    }


@router.get(
    "/v1/bookings/{booking_id}",
    response_model=BookingDetailsOut,
    response_model_exclude_unset=True,
    summary="One booking with its history",
)
async def get_booking(
    booking_id: Uuid, request: Request, response: Response, _: Principal = Depends(authenticated)
) -> dict[str, Any]:
    booking = await gateway_of(request).peers.booking.call("GetBooking", bk.GetBookingRequest(id=booking_id))
    if booking.etag:
        response.headers["ETag"] = booking.etag
    return _with_place(booking, await _place_summaries(request, [booking.place_id]))


@router.post(
    "/v1/bookings/{booking_id}:approve",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Host: approve a requested booking",
)
async def approve_booking(
    booking_id: Uuid,
    request: Request,
    if_match: str | None = IfMatch,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    approve = bk.ApproveBookingRequest(request_id=key, id=booking_id, etag=_etag(if_match))
    return to_json(await gateway_of(request).peers.booking.call("ApproveBooking", approve))


@router.post(
    "/v1/bookings/{booking_id}:reject",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Host: reject a requested booking",
)
async def reject_booking(
    booking_id: Uuid,
    request: Request,
    body: ReasonIn | None = None,
    if_match: str | None = IfMatch,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    reject = bk.RejectBookingRequest(
        request_id=key, id=booking_id, reason=body.reason if body else "", etag=_etag(if_match)
    )
    return to_json(await gateway_of(request).peers.booking.call("RejectBooking", reject))


@router.post(
    "/v1/bookings/{booking_id}:cancel",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Client, host or agent: cancel (refund per policy)",
)
async def cancel_booking(
    booking_id: Uuid,
    request: Request,
    body: ReasonIn | None = None,
    if_match: str | None = IfMatch,
    _: Principal = Depends(authenticated),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    cancel = bk.CancelBookingRequest(
        request_id=key, id=booking_id, reason=body.reason if body else "", etag=_etag(if_match)
    )
    return to_json(await gateway_of(request).peers.booking.call("CancelBooking", cancel))


@router.post(
    "/v1/bookings/{booking_id}:reschedule",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Move a confirmed booking to new ranges",
)
async def reschedule_booking(
    booking_id: Uuid,
    body: RescheduleIn,
    request: Request,
    if_match: str | None = IfMatch,
    _: Principal = Depends(authenticated),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    move = bk.RescheduleBookingRequest(request_id=key, id=booking_id, ranges=_ranges(body.ranges), etag=_etag(if_match))
    return to_json(await gateway_of(request).peers.booking.call("RescheduleBooking", move))


@router.post(
    "/v1/bookings/{booking_id}:confirm",
    response_model=BookingOut,
    response_model_exclude_unset=True,
    summary="Client: pay an approved booking",
)
async def confirm_booking(
    booking_id: Uuid,
    body: ConfirmIn,
    request: Request,
    _: Principal = Depends(authenticated),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    confirm = bk.ConfirmBookingRequest(request_id=key, id=booking_id, payment_method_token=body.payment_method_token)
    return to_json(await gateway_of(request).peers.booking.call("ConfirmBooking", confirm))


@router.get(
    "/v1/bookings/{booking_id}/payments",
    response_model=PaymentPageOut,
    response_model_exclude_unset=True,
    tags=["payments"],
    summary="Payments of a booking",
)
async def booking_payments(
    booking_id: Uuid,
    request: Request,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(authenticated),
) -> dict[str, Any]:
    gateway = gateway_of(request)
    # The booking service decides who may see the booking; its payments follow (read as the
    # platform: payments knows the payer only, and the host of the booking may see them too).
    await gateway.peers.booking.call("GetBooking", bk.GetBookingRequest(id=booking_id))
    query = pay.ListPaymentsRequest(
        booking_id=booking_id, page_size=page_size, page_token=decode_cursor("payments", page_token)
    )
    reply = await gateway.peers.payments.call("ListPayments", query, caller=SYSTEM)
    return {
        "payments": [to_json(p) for p in reply.payments],
        "next_page_token": encode_cursor("payments", reply.next_page_token),
    }
