"""Recurring series (all-or-nothing and allow_partial) and the waitlist (join, offered a hold when
the range frees, leave) through the real servers, with their unhappy paths and lock budgets."""

from __future__ import annotations

from datetime import timedelta

from booking_support import (
    As,
    assert_lock_budget,
    create_request,
    error_info,
    fail,
    future_hour,
    make_place,
    refused,
    rid,
    trange,
    user,
)

from reserva.availability.v1 import availability_pb2 as apb
from reserva.booking.v1 import booking_pb2 as bpb

B = bpb.Booking
WEEK = timedelta(days=7)


def _series(place_id: str, start, count: int = 3, allow_partial: bool = False, request_id: str | None = None):
    return bpb.CreateRecurringBookingsRequest(
        request_id=request_id or rid(),
        place_id=place_id,
        first_occurrence=trange(start, start + timedelta(hours=1)),
        recurrence=bpb.Recurrence(frequency=bpb.Recurrence.WEEKLY, count=count),
        guests=1,
        payment_method_token="tok_success",
        allow_partial=allow_partial,
    )


async def test_a_weekly_series_is_booked_whole_and_a_retry_returns_it(bstub, astub, lock_readings):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=60)
    request = _series(place.id, start)
    result = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.status for b in result.booked] == [B.CONFIRMED] * 3 and not result.conflicts
    assert {b.series_id for b in result.booked} == {result.series_id}
    starts = [b.ranges[0].start_time.seconds for b in result.booked]
    assert starts == [int((start + i * WEEK).timestamp()) for i in range(3)]
    again = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.id for b in again.booked] == [b.id for b in result.booked]
    assert_lock_budget(lock_readings(), "CreateRecurringBookings")


async def test_a_series_with_a_taken_occurrence_books_nothing_by_default(bstub, astub, admin_sql, lock_readings):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=61)
    taken = start + WEEK
    await As(bstub, user()).CreateBooking(create_request(place.id, (taken, taken + timedelta(hours=1))))
    error = await fail(As(bstub, client).CreateRecurringBookings(_series(place.id, start)))
    reason, _, details = error_info(error)
    assert (error.code().name, reason) == ("FAILED_PRECONDITION", "SLOT_UNAVAILABLE")
    conflict = apb.SlotConflict()
    assert details[0].Unpack(conflict)
    assert [r.start_time.seconds for r in conflict.conflicting_ranges] == [int(taken.timestamp())]
    mine = await admin_sql.fetch(
        "SELECT status, hold_id FROM booking.bookings WHERE client_id = $1::uuid", client.user_id
    )
    assert mine and all(b["status"] in ("expired", "rejected") for b in mine)
    live = await admin_sql.fetchval(
        "SELECT count(*) FROM availability.holds WHERE holder_id = $1 AND state IN ('held', 'confirmed')",
        client.user_id,
    )
    assert live == 0
    money = await admin_sql.fetchval(
        "SELECT count(*) FROM payments.payments WHERE user_id = $1::uuid AND status IN ('authorized', 'captured')",
        client.user_id,
    )
    assert money == 0
    assert_lock_budget(lock_readings(), "CreateRecurringBookings")


async def test_allow_partial_books_the_free_occurrences_and_reports_the_taken(bstub, astub):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=62)
    taken = start + 2 * WEEK
    await As(bstub, user()).CreateBooking(create_request(place.id, (taken, taken + timedelta(hours=1))))
    result = await As(bstub, client).CreateRecurringBookings(_series(place.id, start, allow_partial=True))
    assert [b.ranges[0].start_time.seconds for b in result.booked] == [
        int(start.timestamp()),
        int((start + WEEK).timestamp()),
    ]
    assert all(b.status == B.CONFIRMED for b in result.booked)
    assert [r.start_time.seconds for r in result.conflicts] == [int(taken.timestamp())]


async def test_series_refuse_request_places_and_bad_recurrences(bstub, astub):
    host = user("host")
    start = future_hour(days=63)
    request_place = await make_place(astub, host, mode="request")
    error = await fail(As(bstub, user()).CreateRecurringBookings(_series(request_place.id, start)))
    assert refused(error) == ("FAILED_PRECONDITION", "RECURRING_NOT_SUPPORTED")
    place = await make_place(astub, host)
    error = await fail(As(bstub, user()).CreateRecurringBookings(_series(place.id, start, count=1)))
    assert refused(error) == ("INVALID_ARGUMENT", "INVALID_RECURRENCE")


async def test_a_waiting_client_is_offered_a_hold_when_the_range_frees(bstub, astub, admin_sql, lock_readings):
    host, holder, waiter = user("host"), user(), user()
    place = await make_place(astub, host)
    start = future_hour(days=64)
    span = (start, start + timedelta(hours=1))
    booking = await As(bstub, holder).CreateBooking(create_request(place.id, span))
    join = bpb.JoinWaitlistRequest(request_id=rid(), place_id=place.id, range=trange(*span), guests=2)
    entry = await As(bstub, waiter).JoinWaitlist(join)
    assert entry.state == bpb.WaitlistEntry.WAITING and entry.position == 1
    assert (await As(bstub, waiter).JoinWaitlist(join)).id == entry.id  # a retry
    listed = await As(bstub, host).ListWaitlist(bpb.ListWaitlistRequest(place_id=place.id))
    assert [e.id for e in listed.entries] == [entry.id]

    await As(bstub, holder).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id))
    mine = await As(bstub, waiter).ListWaitlist(bpb.ListWaitlistRequest(client_id=waiter.user_id))
    offered = mine.entries[0]
    assert offered.state == bpb.WaitlistEntry.OFFERED and offered.HasField("offer_expire_time")
    hold = await admin_sql.fetchrow(
        "SELECT h.state, h.holder_id FROM availability.holds h JOIN booking.waitlist w ON w.hold_id = h.id::text "
        "WHERE w.id = $1::uuid",
        entry.id,
    )
    assert (hold["state"], hold["holder_id"]) == ("held", waiter.user_id)
    event = await admin_sql.fetchval(
        "SELECT count(*) FROM booking.outbox WHERE event_type = 'waitlist.offered' AND aggregate_id = $1", entry.id
    )
    assert event == 1
    # The offered range is held for the waiter: someone else cannot take it meanwhile.
    error = await fail(As(bstub, user()).CreateBooking(create_request(place.id, span)))
    assert refused(error) == ("FAILED_PRECONDITION", "SLOT_UNAVAILABLE")

    stranger = await fail(As(bstub, user()).LeaveWaitlist(bpb.LeaveWaitlistRequest(request_id=rid(), id=entry.id)))
    assert refused(stranger) == ("NOT_FOUND", "WAITLIST_ENTRY_NOT_FOUND")
    left = await As(bstub, waiter).LeaveWaitlist(bpb.LeaveWaitlistRequest(request_id=rid(), id=entry.id))
    assert left.state == bpb.WaitlistEntry.LEFT
    released = await admin_sql.fetchval(
        "SELECT h.state FROM availability.holds h JOIN booking.waitlist w ON w.hold_id = h.id::text "
        "WHERE w.id = $1::uuid",
        entry.id,
    )
    assert released == "released"
    # The range is free again; a late retry of the join still answers the entry it made.
    assert (await As(bstub, waiter).JoinWaitlist(join)).id == entry.id
    assert_lock_budget(lock_readings(), "JoinWaitlist", "ListWaitlist", "CancelBooking", "LeaveWaitlist")


async def test_a_range_nothing_occupies_is_booked_not_waited_for(bstub, astub, admin_sql):
    place = await make_place(astub, user("host"))
    start = future_hour(days=65)
    join = bpb.JoinWaitlistRequest(
        request_id=rid(), place_id=place.id, range=trange(start, start + timedelta(hours=1)), guests=1
    )
    error = await fail(As(bstub, user()).JoinWaitlist(join))
    assert refused(error) == ("FAILED_PRECONDITION", "SLOT_AVAILABLE")
    assert await admin_sql.fetchval("SELECT count(*) FROM booking.waitlist WHERE place_id = $1::uuid", place.id) == 0


async def test_joining_a_waitlist_for_a_past_range_is_invalid(bstub, astub):
    place = await make_place(astub, user("host"))
    past = future_hour(days=-2)
    request = bpb.JoinWaitlistRequest(
        request_id=rid(), place_id=place.id, range=trange(past, past + timedelta(hours=1)), guests=1
    )
    error = await fail(As(bstub, user()).JoinWaitlist(request))
    assert refused(error) == ("INVALID_ARGUMENT", "INVALID_TIME_RANGE")
