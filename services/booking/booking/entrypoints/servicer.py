"""gRPC servicer: thin. Requests -> handler arguments, domain -> protos. No business rules here."""

from __future__ import annotations

from booking.adapters.proto_mapping import (
    STATUS_FROM_PROTO,
    WAIT_FROM_PROTO,
    booking_to_proto,
    review_to_proto,
    status_to_proto,
    waitlist_to_proto,
)
from booking.adapters.proto_time import from_ts, range_from_proto, range_to_proto
from booking.domain.errors import SlotUnavailable, invalid
from booking.service_layer import handlers as h
from booking.service_layer.flows import Deps
from kit.context import current_caller
from kit.errors import ReservaError
from reserva.availability.v1 import availability_pb2
from reserva.booking.v1 import booking_pb2, booking_pb2_grpc
from reserva.type.v1 import types_pb2


def slot_conflict_details(error: ReservaError) -> list:
    if isinstance(error, SlotUnavailable) or error.reason == "SLOT_UNAVAILABLE":
        ranges = error.details.get("conflicting_ranges", [])
        return [availability_pb2.SlotConflict(conflicting_ranges=[range_to_proto(r) for r in ranges])]
    return []


def _statuses(values) -> tuple:
    try:
        return tuple(STATUS_FROM_PROTO[v] for v in values)
    except KeyError:
        raise invalid("INVALID_STATUS", "unknown booking status in filter") from None


class BookingServicer(booking_pb2_grpc.BookingServiceServicer):
    def __init__(self, deps: Deps):
        self.d = deps

    async def CreateBooking(self, request, context):
        cmd = h.CreateBooking(
            request.request_id,
            request.place_id,
            [range_from_proto(r) for r in request.ranges],
            request.guests,
            request.units or 1,
            request.payment_method_token,
            request.note,
            request.waitlist_entry_id,
        )
        return booking_to_proto(await h.create_booking(self.d, current_caller.get(), cmd))

    async def GetBooking(self, request, context):
        booking, payment_status = await h.get_booking(self.d, current_caller.get(), request.id)
        return booking_to_proto(booking, full=True, payment_status=payment_status)

    async def ListBookings(self, request, context):
        cmd = h.ListBookings(
            client_id=request.client_id,
            host_id=request.host_id,
            place_id=request.place_id,
            statuses=_statuses(request.statuses),
            time_range=range_from_proto(request.time_range, "time_range") if request.HasField("time_range") else None,
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        page, token, _places = await h.list_bookings(self.d, current_caller.get(), cmd)
        full = request.view == booking_pb2.BOOKING_VIEW_FULL
        return booking_pb2.ListBookingsResponse(
            bookings=[booking_to_proto(b, full=full) for b in page], next_page_token=token
        )

    async def ApproveBooking(self, request, context):
        b = await h.approve_booking(self.d, current_caller.get(), request.request_id, request.id, request.etag)
        return booking_to_proto(b)

    async def RejectBooking(self, request, context):
        b = await h.reject_booking(
            self.d, current_caller.get(), request.request_id, request.id, request.reason, request.etag
        )
        return booking_to_proto(b)

    async def CancelBooking(self, request, context):
        b = await h.cancel_booking(
            self.d, current_caller.get(), request.request_id, request.id, request.reason, request.etag
        )
        return booking_to_proto(b)

    async def RescheduleBooking(self, request, context):
        ranges = [range_from_proto(r) for r in request.ranges]
        b = await h.reschedule_booking(
            self.d, current_caller.get(), request.request_id, request.id, ranges, request.etag
        )
        return booking_to_proto(b)

    async def ConfirmBooking(self, request, context):
        b = await h.confirm_booking(
            self.d, current_caller.get(), request.request_id, request.id, request.payment_method_token
        )
        return booking_to_proto(b)

    async def MarkNoShow(self, request, context):
        b = await h.mark_no_show(self.d, current_caller.get(), request.request_id, request.id, request.reason)
        return booking_to_proto(b)

    async def CompleteBooking(self, request, context):
        return booking_to_proto(await h.complete_booking(self.d, current_caller.get(), request.request_id, request.id))

    async def CreateRecurringBookings(self, request, context):
        rec = request.recurrence
        cmd = h.CreateRecurring(
            request_id=request.request_id,
            place_id=request.place_id,
            first=range_from_proto(request.first_occurrence, "first_occurrence"),
            frequency={1: "daily", 2: "weekly"}.get(rec.frequency, ""),
            count=rec.count,
            until=from_ts(rec.until) if rec.HasField("until") else None,
            guests=request.guests,
            units=request.units or 1,
            payment_token=request.payment_method_token,
            note=request.note,
            allow_partial=request.allow_partial,
        )
        h.require_request_id(cmd.request_id)
        booked, conflicts, series_id = await h.create_recurring_bookings(self.d, current_caller.get(), cmd)
        return booking_pb2.RecurringBookingResult(
            booked=[booking_to_proto(b) for b in booked],
            conflicts=[range_to_proto(r) for r in conflicts],
            series_id=series_id,
        )

    async def JoinWaitlist(self, request, context):
        entry = await h.join_waitlist(
            self.d,
            current_caller.get(),
            request.request_id,
            request.place_id,
            range_from_proto(request.range, "range"),
            request.guests,
            request.units,
        )
        return waitlist_to_proto(entry)

    async def LeaveWaitlist(self, request, context):
        return waitlist_to_proto(await h.leave_waitlist(self.d, current_caller.get(), request.request_id, request.id))

    async def ListWaitlist(self, request, context):
        try:
            states = tuple(WAIT_FROM_PROTO[s] for s in request.states)
        except KeyError:
            raise invalid("INVALID_STATE", "unknown waitlist state") from None
        page, token = await h.list_waitlist(
            self.d,
            current_caller.get(),
            request.place_id,
            request.client_id,
            states,
            request.page_size,
            request.page_token,
        )
        return booking_pb2.ListWaitlistResponse(entries=[waitlist_to_proto(e) for e in page], next_page_token=token)

    async def CreateReview(self, request, context):
        r = await h.create_review(
            self.d, current_caller.get(), request.request_id, request.booking_id, request.rating, request.text
        )
        return review_to_proto(r)

    async def ReplyToReview(self, request, context):
        r = await h.reply_to_review(self.d, current_caller.get(), request.request_id, request.review_id, request.text)
        return review_to_proto(r)

    async def HideReview(self, request, context):
        r = await h.hide_review(self.d, current_caller.get(), request.request_id, request.review_id, request.reason)
        return review_to_proto(r)

    async def ListReviews(self, request, context):
        page, token = await h.list_reviews(
            self.d,
            current_caller.get(),
            request.place_id,
            request.include_hidden,
            request.page_size,
            request.page_token,
        )
        return booking_pb2.ListReviewsResponse(reviews=[review_to_proto(r) for r in page], next_page_token=token)

    async def GetBookingStats(self, request, context):
        if not request.HasField("time_range"):
            raise invalid("INVALID_TIME_RANGE", "time_range is required")
        window = range_from_proto(request.time_range, "time_range")
        rows = await h.get_booking_stats(
            self.d, current_caller.get(), window, request.host_id, request.place_id, request.time_zone
        )
        out = booking_pb2.BookingStats()
        revenue: dict[str, int] = {}
        reached = cancelled = 0
        for row in rows:
            status = STATUS_FROM_PROTO_BY_NAME[row.status]
            out.daily_counts.add(
                date=types_pb2.Date(year=row.day.year, month=row.day.month, day=row.day.day),
                status=status_to_proto(status),
                count=row.n,
            )
            out.total_bookings += row.n
            if row.status == "cancelled":
                cancelled += row.n
                reached += row.confirmed_before
            if row.status in ("confirmed", "completed", "no_show"):
                reached += row.n
            revenue[row.currency] = revenue.get(row.currency, 0) + int(row.revenue or 0)
        out.cancelled_bookings = cancelled
        out.cancellation_rate = (cancelled / reached) if reached else 0.0
        for code in sorted(revenue):
            out.revenue.add(amount_minor=revenue[code], currency_code=code)
        return out


STATUS_FROM_PROTO_BY_NAME = {s.value: s for s in STATUS_FROM_PROTO.values()}
