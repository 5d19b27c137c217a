"""A recurring series keeps its promise through the real servers: without allow_partial nothing is
kept (no hold, no authorization, no capture) unless every occurrence is booked, and the answer says
why; with allow_partial every occurrence that cannot be booked (taken, outside the schedule, its
payment declined) is reported in `conflicts` and the others are booked; a retry with the same
request id answers the same."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import grpc
from booking_support import (
    As,
    assert_lock_budget,
    booking_settings,
    error_info,
    fail,
    future_hour,
    make_place,
    rid,
    trange,
    user,
)

from booking.bootstrap import start as start_booking
from booking.entrypoints.workers import sweep_once
from booking.service_layer.flows import SimulatedCrash
from reserva.availability.v1 import availability_pb2 as apb
from reserva.booking.v1 import booking_pb2 as bpb
from reserva.booking.v1 import booking_pb2_grpc
from reserva.type.v1 import types_pb2

B = bpb.Booking
DAY, WEEK = timedelta(days=1), timedelta(days=7)


def _series(place_id: str, start, count: int = 3, step=WEEK, allow_partial: bool = False):
    frequency = bpb.Recurrence.WEEKLY if step == WEEK else bpb.Recurrence.DAILY
    return bpb.CreateRecurringBookingsRequest(
        request_id=rid(),
        place_id=place_id,
        first_occurrence=trange(start, start + timedelta(hours=1)),
        recurrence=bpb.Recurrence(frequency=frequency, count=count),
        guests=1,
        payment_method_token="tok_success",
        allow_partial=allow_partial,
    )


@contextmanager
def card_fails_at(server, k: int, token: str):
    """The card's k-th authorization from here on is made with `token` (a sandbox token that the
    real payments service and processor decline, or whose capture they refuse): a card that
    reaches its limit part way through a series."""
    payments = server.deps.payments
    original, calls = payments.authorize, 0

    async def authorize(**kw):
        nonlocal calls
        calls += 1
        if calls == k:
            kw["token"] = token
        return await original(**kw)

    payments.authorize = authorize
    try:
        yield
    finally:
        del payments.authorize


async def _nothing_kept(admin_sql, client) -> None:
    statuses = await admin_sql.fetch("SELECT status FROM booking.bookings WHERE client_id = $1::uuid", client.user_id)
    assert statuses and all(r["status"] in ("expired", "rejected", "payment_failed", "cancelled") for r in statuses)
    live = await admin_sql.fetchval(
        "SELECT count(*) FROM availability.holds WHERE holder_id = $1 AND state IN ('held', 'confirmed')",
        client.user_id,
    )
    assert live == 0
    kept = await admin_sql.fetchval(
        "SELECT coalesce(sum(captured_amount - refunded_amount), 0) FROM payments.payments WHERE user_id = $1::uuid",
        client.user_id,
    )
    authorized = await admin_sql.fetchval(
        "SELECT count(*) FROM payments.payments WHERE user_id = $1::uuid AND status = 'authorized'", client.user_id
    )
    assert (kept, authorized) == (0, 0)


async def test_a_series_whose_second_payment_is_declined_keeps_nothing_and_a_retry_says_so(
    bstub, astub, admin_sql, booking_server, lock_readings
):
    client = user()
    place = await make_place(astub, user("host"))
    request = _series(place.id, future_hour(days=70))
    with card_fails_at(booking_server, 2, "tok_decline_insufficient_funds"):
        error = await fail(As(bstub, client).CreateRecurringBookings(request))
    reason, metadata, _ = error_info(error)
    assert (error.code().name, reason, metadata["failure_reason"]) == (
        "FAILED_PRECONDITION",
        "PAYMENT_DECLINED",
        "insufficient_funds",
    )
    await _nothing_kept(admin_sql, client)
    again = await fail(As(bstub, client).CreateRecurringBookings(request))
    assert error_info(again)[:2] == (reason, metadata)
    assert_lock_budget(lock_readings(), "CreateRecurringBookings")


async def test_a_series_whose_second_capture_is_refused_refunds_the_first(bstub, astub, admin_sql, booking_server):
    client = user()
    place = await make_place(astub, user("host"))
    with card_fails_at(booking_server, 2, "tok_success+capture_declined"):
        error = await fail(As(bstub, client).CreateRecurringBookings(_series(place.id, future_hour(days=71))))
    assert error_info(error)[0] == "PAYMENT_DECLINED"
    await _nothing_kept(admin_sql, client)


async def test_allow_partial_reports_the_occurrence_whose_payment_is_declined_and_books_the_others(
    bstub, astub, booking_server
):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=72)
    request = _series(place.id, start, allow_partial=True)
    with card_fails_at(booking_server, 2, "tok_decline_card"):
        result = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.ranges[0].start_time.seconds for b in result.booked] == [
        int(start.timestamp()),
        int((start + 2 * WEEK).timestamp()),
    ]
    assert all(b.status == B.CONFIRMED for b in result.booked)
    assert [r.start_time.seconds for r in result.conflicts] == [int((start + WEEK).timestamp())]
    again = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.id for b in again.booked] == [b.id for b in result.booked]
    assert list(again.conflicts) == list(result.conflicts)


async def _weekdays_place(astub):
    """Open Monday to Friday only."""
    hours = [
        apb.OpeningInterval(weekday=d, start=types_pb2.LocalTime(hours=0), end=types_pb2.LocalTime(hours=24))
        for d in range(1, 6)
    ]
    return await make_place(astub, user("host"), schedule=apb.Schedule(opening_hours=hours))


def _next_monday(days: int):
    start = future_hour(days=days)
    return start + (7 - start.weekday()) % 7 * DAY


async def test_a_daily_series_reaching_a_closed_day_keeps_nothing_and_a_retry_says_so(bstub, astub, admin_sql):
    client = user()
    place = await _weekdays_place(astub)
    request = _series(place.id, _next_monday(days=80), count=7, step=DAY)
    error = await fail(As(bstub, client).CreateRecurringBookings(request))
    assert (error.code().name, error_info(error)[0]) == ("FAILED_PRECONDITION", "OUTSIDE_OPENING_HOURS")
    await _nothing_kept(admin_sql, client)
    again = await fail(As(bstub, client).CreateRecurringBookings(request))
    assert (again.code().name, error_info(again)[0]) == ("FAILED_PRECONDITION", "OUTSIDE_OPENING_HOURS")


async def test_allow_partial_reports_the_closed_days_of_a_daily_series_and_books_the_open_ones(bstub, astub):
    client = user()
    place = await _weekdays_place(astub)
    monday = _next_monday(days=90)
    request = _series(place.id, monday, count=7, step=DAY, allow_partial=True)
    result = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.ranges[0].start_time.seconds for b in result.booked] == [
        int((monday + i * DAY).timestamp()) for i in range(5)
    ]
    assert all(b.status == B.CONFIRMED for b in result.booked)
    weekend = [int((monday + i * DAY).timestamp()) for i in (5, 6)]
    assert [r.start_time.seconds for r in result.conflicts] == weekend
    again = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.id for b in again.booked] == [b.id for b in result.booked]
    assert [r.start_time.seconds for r in again.conflicts] == weekend


async def _recover(settings_for, peer_servers) -> None:
    """A restarted booking server's sweeper, run until it finds nothing more to recover."""
    restarted = await start_booking(booking_settings(settings_for, peer_servers))
    try:
        deps = restarted.deps
        while await sweep_once(deps, now=deps.clock() + timedelta(minutes=5)):
            pass
    finally:
        await restarted.stop(0)


async def test_a_series_whose_process_dies_during_the_authorizations_keeps_nothing_and_a_retry_says_so(
    bstub, astub, admin_sql, settings_for, peer_servers
):
    """The first occurrence was authorized and recorded, the second authorized when the process
    died: recovery undoes all of them (before, it captured the first and the retry said not made)."""
    client = user()
    place = await make_place(astub, user("host"))
    request = _series(place.id, future_hour(days=73))
    crashing = await start_booking(booking_settings(settings_for, peer_servers))
    payments = crashing.deps.payments
    original, calls = payments.authorize, 0

    async def authorize_then_die(**kw):
        nonlocal calls
        calls += 1
        payment = await original(**kw)
        if calls == 2:
            raise SimulatedCrash("the process dies after the second authorization")
        return payment

    payments.authorize = authorize_then_die
    try:
        async with grpc.aio.insecure_channel(crashing.address) as channel:
            stub = booking_pb2_grpc.BookingServiceStub(channel)
            error = await fail(As(stub, client).CreateRecurringBookings(request))
            assert error.code() is grpc.StatusCode.INTERNAL
    finally:
        await crashing.stop(0)
    await _recover(settings_for, peer_servers)
    await _nothing_kept(admin_sql, client)
    again = await fail(As(bstub, client).CreateRecurringBookings(request))
    assert (again.code().name, error_info(again)[0]) == ("UNAVAILABLE", "BOOKING_NOT_MADE")


@contextmanager
def worker_sweeps_before(deps, client, method: str, k: int):
    """The recovery worker runs (its clock past every lease) just before the k-th call of the
    client's `method`: a series whose occurrences waited longer than their lease."""
    original, calls = getattr(client, method), 0

    async def call(*args, **kw):
        nonlocal calls
        calls += 1
        if calls == k:
            while await sweep_once(deps, now=deps.clock() + timedelta(minutes=5)):
                pass
        return await original(*args, **kw)

    setattr(client, method, call)
    try:
        yield
    finally:
        delattr(client, method)


async def test_a_series_the_worker_finishes_between_its_phases_is_booked_whole_and_charged_once(
    bstub, astub, admin_sql, booking_server
):
    client = user()
    place = await make_place(astub, user("host"))
    request = _series(place.id, future_hour(days=74))
    deps = booking_server.deps
    with worker_sweeps_before(deps, deps.availability, "confirm_hold", 1):
        result = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.status for b in result.booked] == [B.CONFIRMED] * 3 and not result.conflicts
    rows = await admin_sql.fetch(
        "SELECT status, (SELECT count(*) FROM payments.ledger_entries l WHERE l.payment_id = b.payment_id::uuid"
        " AND l.kind = 'capture') AS captures FROM booking.bookings b WHERE client_id = $1::uuid",
        client.user_id,
    )
    assert [(r["status"], r["captures"]) for r in rows] == [("confirmed", 1)] * 3
    again = await As(bstub, client).CreateRecurringBookings(request)
    assert [b.id for b in again.booked] == [b.id for b in result.booked]


async def test_a_series_the_worker_reaches_during_its_authorizations_keeps_nothing(
    bstub, astub, admin_sql, booking_server
):
    client = user()
    place = await make_place(astub, user("host"))
    request = _series(place.id, future_hour(days=75))
    deps = booking_server.deps
    with worker_sweeps_before(deps, deps.payments, "authorize", 3):
        error = await fail(As(bstub, client).CreateRecurringBookings(request))
    assert (error.code().name, error_info(error)[0]) == ("UNAVAILABLE", "BOOKING_NOT_MADE")
    await _nothing_kept(admin_sql, client)
