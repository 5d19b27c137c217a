"""RescheduleBooking, MarkNoShow, CompleteBooking and GetBookingStats through the real servers, each
with its main unhappy path and the lock budget of its transactions. Started or ended bookings are
reached by moving the booking server's clock, never by waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from booking_support import (
    AGENT,
    As,
    assert_lock_budget,
    booking_clock,
    booking_settings,
    create_request,
    dur,
    error_info,
    fail,
    future_hour,
    make_place,
    refused,
    rid,
    trange,
    user,
)

from booking.bootstrap import start as start_booking
from booking.entrypoints.workers import sweep_once
from reserva.availability.v1 import availability_pb2 as apb
from reserva.booking.v1 import booking_pb2 as bpb
from reserva.booking.v1 import booking_pb2_grpc
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.events.v1 import envelope_pb2
from reserva.type.v1 import types_pb2

B = bpb.Booking


async def _hold(admin_sql, hold_id: str):
    return await admin_sql.fetchrow(
        "SELECT state, create_time, update_time FROM availability.holds WHERE id = $1::uuid", hold_id
    )


async def test_reschedule_takes_the_new_hold_before_releasing_the_old(bstub, astub, admin_sql, lock_readings):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=30)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    later = start + timedelta(days=1)
    moved = await As(bstub, client).RescheduleBooking(
        bpb.RescheduleBookingRequest(
            request_id=rid(), id=booking.id, ranges=[trange(later, later + timedelta(hours=1))], etag=booking.etag
        )
    )
    assert moved.status == B.CONFIRMED and moved.hold_id != booking.hold_id
    assert moved.ranges[0].start_time.seconds == int(later.timestamp())
    old, new = await _hold(admin_sql, booking.hold_id), await _hold(admin_sql, moved.hold_id)
    assert (old["state"], new["state"]) == ("released", "confirmed")
    # The client never held neither: the new hold existed before the old one was released.
    assert new["create_time"] <= old["update_time"]
    # The old time is bookable again by anyone.
    again = await As(bstub, user()).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    assert again.status == B.CONFIRMED
    assert_lock_budget(lock_readings(), "RescheduleBooking")


async def test_reschedule_onto_a_taken_range_keeps_the_booking_as_it_was(bstub, astub, admin_sql, lock_readings):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=31)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    taken = start + timedelta(hours=3)
    await As(bstub, user()).CreateBooking(create_request(place.id, (taken, taken + timedelta(hours=1))))
    request = bpb.RescheduleBookingRequest(
        request_id=rid(), id=booking.id, ranges=[trange(taken, taken + timedelta(hours=1))]
    )
    error = await fail(As(bstub, client).RescheduleBooking(request))
    assert refused(error) == ("FAILED_PRECONDITION", "SLOT_UNAVAILABLE")
    got = await As(bstub, client).GetBooking(bpb.GetBookingRequest(id=booking.id))
    assert got.status == B.CONFIRMED and got.hold_id == booking.hold_id
    assert got.ranges[0].start_time.seconds == int(start.timestamp())
    assert (await _hold(admin_sql, booking.hold_id))["state"] == "confirmed"
    stranger = await fail(As(bstub, user()).RescheduleBooking(request))
    assert refused(stranger) == ("NOT_FOUND", "BOOKING_NOT_FOUND")
    assert_lock_budget(lock_readings(), "RescheduleBooking")


async def _two_hours_then_one(bstub, astub, client, days: int, token: str = "tok_success"):
    """A confirmed, fully paid booking of two hours (4,000) and a request moving it to one hour
    (2,000) the next day: a move that owes a refund of 2,000."""
    place = await make_place(astub, user("host"))
    start = future_hour(days=days)
    booking = await As(bstub, client).CreateBooking(
        create_request(place.id, (start, start + timedelta(hours=2)), token=token)
    )
    assert booking.status == B.CONFIRMED and booking.payment_status == B.PAYMENT_STATUS_CAPTURED
    later = start + timedelta(days=1)
    request = bpb.RescheduleBookingRequest(
        request_id=rid(), id=booking.id, ranges=[trange(later, later + timedelta(hours=1))], etag=booking.etag
    )
    return booking, request


async def _payment(admin_sql, payment_id: str):
    return await admin_sql.fetchrow(
        "SELECT status, captured_amount, refunded_amount FROM payments.payments WHERE id = $1::uuid", payment_id
    )


async def test_reschedule_to_a_lower_price_refunds_the_difference(bstub, astub, admin_sql, lock_readings):
    client = user()
    booking, request = await _two_hours_then_one(bstub, astub, client, days=34)
    moved = await As(bstub, client).RescheduleBooking(request)
    assert moved.status == B.CONFIRMED and moved.saga_state == B.SAGA_STATE_DONE
    assert moved.price.amount_minor == 2000
    assert tuple(await _payment(admin_sql, booking.payment_id)) == ("partially_refunded", 4000, 2000)
    assert (await _hold(admin_sql, booking.hold_id))["state"] == "released"
    # A retry of the same request answers the same booking and refunds nothing more.
    again = await As(bstub, client).RescheduleBooking(request)
    assert again.hold_id == moved.hold_id
    assert (await _payment(admin_sql, booking.payment_id))["refunded_amount"] == 2000
    assert_lock_budget(lock_readings(), "RescheduleBooking")


async def test_a_reschedule_refund_the_processor_refuses_still_answers_the_moved_booking(bstub, astub, admin_sql):
    client = user()
    booking, request = await _two_hours_then_one(bstub, astub, client, days=35, token="tok_success+refund_declined")
    # The booking moved (the old hold released): that is the answer, not PAYMENT_DECLINED.
    moved = await As(bstub, client).RescheduleBooking(request)
    assert moved.status == B.CONFIRMED and moved.saga_state == B.SAGA_STATE_DONE
    assert moved.ranges[0].start_time.seconds == request.ranges[0].start_time.seconds
    assert (await _hold(admin_sql, booking.hold_id))["state"] == "released"
    row = await admin_sql.fetchrow(
        "SELECT failure_reason, pending_move FROM booking.bookings WHERE id = $1::uuid", booking.id
    )
    assert row["failure_reason"] == "refund_declined" and row["pending_move"] is None
    # The money stays captured; payments told the client and the agents (payment.refund_failed).
    assert tuple(await _payment(admin_sql, booking.payment_id)) == ("captured", 4000, 0)


async def test_a_reschedule_whose_refund_cannot_be_asked_now_is_finished_by_recovery(
    bstub, astub, admin_sql, settings_for, peer_servers
):
    client = user()
    booking, request = await _two_hours_then_one(bstub, astub, client, days=36)
    # A booking server that cannot reach payments (refused at once): the move itself needs no
    # payment call. The default deadline stays, for its calls to availability.
    cut_off = await start_booking(booking_settings(settings_for, peer_servers, payments_addr="127.0.0.1:1"))
    try:
        async with grpc.aio.insecure_channel(cut_off.address) as channel:
            stub = booking_pb2_grpc.BookingServiceStub(channel)
            moved = await As(stub, client).RescheduleBooking(request)
    finally:
        await cut_off.stop(0)
    assert moved.status == B.CONFIRMED and moved.saga_state == B.SAGA_STATE_REFUNDING
    assert moved.ranges[0].start_time.seconds == request.ranges[0].start_time.seconds
    assert (await _hold(admin_sql, booking.hold_id))["state"] == "released"  # done before the refund
    assert (await _payment(admin_sql, booking.payment_id))["refunded_amount"] == 0
    # Until it is settled, the booking takes no other change that could lose what the move owes.
    refused_now = await fail(As(bstub, client).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id)))
    assert refused(refused_now) == ("FAILED_PRECONDITION", "ILLEGAL_STATUS_TRANSITION")

    restarted = await start_booking(booking_settings(settings_for, peer_servers))
    try:
        while await sweep_once(restarted.deps, now=restarted.deps.clock() + timedelta(minutes=5)):
            pass
    finally:
        await restarted.stop(0)
    row = await admin_sql.fetchrow(
        "SELECT status, saga_state, pending_move, due_time, last_end FROM booking.bookings WHERE id = $1::uuid",
        booking.id,
    )
    assert (row["status"], row["saga_state"], row["pending_move"]) == ("confirmed", "done", None)
    assert row["due_time"] == row["last_end"]  # back on the completion sweeper's schedule
    assert tuple(await _payment(admin_sql, booking.payment_id)) == ("partially_refunded", 4000, 2000)


async def test_host_marks_a_started_booking_no_show_and_keeps_the_deposit(
    bstub, astub, admin_sql, booking_server, lock_readings
):
    host, client = user("host"), user()
    place = await make_place(
        astub, host, deposit_policy=apb.DepositPolicy(kind=apb.DepositPolicy.DEPOSIT_PERCENT, percent=30)
    )
    start = future_hour(days=32)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=2))))
    assert booking.status == B.CONFIRMED and booking.deposit_amount.amount_minor == 1200

    early = await fail(As(bstub, host).MarkNoShow(bpb.MarkNoShowRequest(request_id=rid(), id=booking.id)))
    assert refused(early) == ("FAILED_PRECONDITION", "ILLEGAL_STATUS_TRANSITION")
    assert "not started" in early.details()
    with booking_clock(booking_server, start - datetime.now(UTC) + timedelta(minutes=30)):
        not_host = await fail(As(bstub, client).MarkNoShow(bpb.MarkNoShowRequest(request_id=rid(), id=booking.id)))
        assert refused(not_host) == ("PERMISSION_DENIED", "NOT_PLACE_OWNER")
        request = bpb.MarkNoShowRequest(request_id=rid(), id=booking.id, reason="nobody came")
        marked = await As(bstub, host).MarkNoShow(request)
        assert (await As(bstub, host).MarkNoShow(request)).status == B.NO_SHOW  # a retry
    assert marked.status == B.NO_SHOW and marked.saga_state == B.SAGA_STATE_DONE
    payment = await admin_sql.fetchrow(
        "SELECT status, captured_amount FROM payments.payments WHERE id = $1::uuid", booking.payment_id
    )
    assert (payment["status"], payment["captured_amount"]) == ("captured", 1200)
    assert_lock_budget(lock_readings(), "MarkNoShow")


async def test_a_no_show_fee_the_processor_refuses_ends_the_booking_with_its_payment_failed_and_voided(
    bstub, astub, admin_sql, booking_server
):
    host, client = user("host"), user()
    place = await make_place(
        astub, host, deposit_policy=apb.DepositPolicy(kind=apb.DepositPolicy.DEPOSIT_PERCENT, percent=30)
    )
    start = future_hour(days=33)
    request = create_request(place.id, (start, start + timedelta(hours=2)), token="tok_success+capture_declined")
    booking = await As(bstub, client).CreateBooking(request)
    assert booking.status == B.CONFIRMED  # a deposit: nothing is captured until the booking ends
    with booking_clock(booking_server, start - datetime.now(UTC) + timedelta(minutes=30)):
        marked = await As(bstub, host).MarkNoShow(bpb.MarkNoShowRequest(request_id=rid(), id=booking.id))
    assert marked.status == B.NO_SHOW and marked.saga_state == B.SAGA_STATE_DONE
    assert marked.payment_status == B.PAYMENT_STATUS_FAILED
    row = await admin_sql.fetchrow("SELECT failure_reason FROM booking.bookings WHERE id = $1::uuid", booking.id)
    assert row["failure_reason"] == "capture_declined"
    payment = await admin_sql.fetchrow(
        "SELECT status, captured_amount FROM payments.payments WHERE id = $1::uuid", booking.payment_id
    )
    assert (payment["status"], payment["captured_amount"]) == ("voided", 0)  # no authorization left standing
    # The client and the agents hear of the fee nobody collected.
    raw = await admin_sql.fetchval(
        "SELECT envelope FROM booking.outbox WHERE aggregate_id = $1 AND event_type = 'booking.fee_unpaid'",
        booking.id,
    )
    envelope = envelope_pb2.EventEnvelope.FromString(raw)
    unpaid = booking_events.BookingFeeUnpaid()
    assert envelope.payload.Unpack(unpaid)
    assert (unpaid.amount.amount_minor, unpaid.failure_reason, unpaid.status) == (1200, "capture_declined", B.NO_SHOW)
    assert unpaid.client_id == client.user_id and unpaid.payment_id == booking.payment_id


async def test_an_operator_completes_an_ended_booking_and_not_before(bstub, astub, booking_server, lock_readings):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=33)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    request = bpb.CompleteBookingRequest(request_id=rid(), id=booking.id)
    early = await fail(As(bstub, AGENT).CompleteBooking(request))
    assert refused(early) == ("FAILED_PRECONDITION", "ILLEGAL_STATUS_TRANSITION")
    not_operator = await fail(
        As(bstub, client).CompleteBooking(bpb.CompleteBookingRequest(request_id=rid(), id=booking.id))
    )
    assert refused(not_operator) == ("PERMISSION_DENIED", "NOT_OPERATOR")
    with booking_clock(booking_server, timedelta(days=34)):
        request.request_id = rid()
        done = await As(bstub, AGENT).CompleteBooking(request)
        assert (await As(bstub, AGENT).CompleteBooking(request)).id == done.id  # a retry
    assert done.status == B.COMPLETED
    history = (await As(bstub, client).GetBooking(bpb.GetBookingRequest(id=booking.id))).history
    assert [h.to_status for h in history] == [B.HELD, B.CONFIRMED, B.COMPLETED]
    assert_lock_budget(lock_readings(), "CompleteBooking")


async def test_booking_stats_count_by_day_and_status_with_rate_and_revenue(bstub, astub, lock_readings):
    host = user("host")
    place = await make_place(astub, host)
    day = future_hour(days=40, hour=8)
    bookings = [
        await As(bstub, user()).CreateBooking(
            create_request(place.id, (day + timedelta(hours=i), day + timedelta(hours=i + 1)))
        )
        for i in range(3)
    ]
    await As(bstub, host).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=bookings[0].id))
    window = trange(day - timedelta(days=1), day + timedelta(days=1))
    stats = await As(bstub, host).GetBookingStats(bpb.GetBookingStatsRequest(time_range=window))
    assert stats.total_bookings == 3 and stats.cancelled_bookings == 1
    assert stats.cancellation_rate == pytest.approx(1 / 3)
    assert [(m.amount_minor, m.currency_code) for m in stats.revenue] == [(4000, "EUR")]
    assert sorted((c.status, c.count) for c in stats.daily_counts) == [(B.CONFIRMED, 2), (B.CANCELLED, 1)]
    assert {(c.date.year, c.date.month, c.date.day) for c in stats.daily_counts} == {(day.year, day.month, day.day)}
    # Another host's figures are not this host's to see; an operator may ask for them.
    other = await fail(
        As(bstub, user("host")).GetBookingStats(bpb.GetBookingStatsRequest(time_range=window, host_id=host.user_id))
    )
    assert refused(other) == ("PERMISSION_DENIED", "NOT_PLACE_OWNER")
    by_agent = await As(bstub, AGENT).GetBookingStats(
        bpb.GetBookingStatsRequest(time_range=window, host_id=host.user_id)
    )
    assert by_agent.total_bookings == 3
    assert_lock_budget(lock_readings(), "GetBookingStats")


async def test_booking_stats_revenue_is_what_was_captured_less_what_was_refunded(bstub, astub, booking_server):
    """A deposit's no-show keeps the deposit, a late cancellation keeps its fee, a deposit not yet
    captured and a completion whose capture the processor refused keep nothing."""
    host = user("host")
    deposit = await make_place(
        astub, host, deposit_policy=apb.DepositPolicy(kind=apb.DepositPolicy.DEPOSIT_PERCENT, percent=30)
    )
    partial = apb.CancellationPolicy(full_refund_notice=dur(days=365), partial_refund_percent=25)
    prepaid = await make_place(astub, host, cancellation_policy=partial)
    day = future_hour(days=45, hour=8)

    async def book(place, hour: int, hours: int = 1, token: str = "tok_success"):
        start, client = day + timedelta(hours=hour), user()
        request = create_request(place.id, (start, start + timedelta(hours=hours)), token=token)
        booking = await As(bstub, client).CreateBooking(request)
        assert booking.status == B.CONFIRMED
        return booking, client

    no_show, _ = await book(deposit, 0, hours=2)  # 4000, deposit 1200
    unpaid, _ = await book(deposit, 2, token="tok_success+capture_declined")  # 2000, its capture refused
    await book(deposit, 4)  # confirmed, only authorized: nothing captured yet
    await book(prepaid, 5)  # captured at confirmation: 2000
    cancelled, client = await book(prepaid, 6)  # 2000, 25 % refunded: 1500 kept
    cancel = bpb.CancelBookingRequest(request_id=rid(), id=cancelled.id)
    assert (await As(bstub, client).CancelBooking(cancel)).cancellation.refund_amount.amount_minor == 500
    with booking_clock(booking_server, day + timedelta(hours=3, minutes=30) - datetime.now(UTC)):
        marked = await As(bstub, host).MarkNoShow(bpb.MarkNoShowRequest(request_id=rid(), id=no_show.id))
        done = await As(bstub, AGENT).CompleteBooking(bpb.CompleteBookingRequest(request_id=rid(), id=unpaid.id))
    assert marked.payment_status == B.PAYMENT_STATUS_CAPTURED
    assert (done.status, done.payment_status) == (B.COMPLETED, B.PAYMENT_STATUS_FAILED)
    window = trange(day - timedelta(days=1), day + timedelta(days=1))
    stats = await As(bstub, host).GetBookingStats(bpb.GetBookingStatsRequest(time_range=window))
    assert stats.total_bookings == 5
    assert [(m.amount_minor, m.currency_code) for m in stats.revenue] == [(1200 + 2000 + 1500, "EUR")]


@pytest.mark.parametrize(
    "request_, reason",
    [
        (lambda d: bpb.GetBookingStatsRequest(), "INVALID_TIME_RANGE"),
        (lambda d: bpb.GetBookingStatsRequest(time_range=trange(d, d + timedelta(days=400))), "INVALID_TIME_RANGE"),
        (
            lambda d: bpb.GetBookingStatsRequest(time_range=trange(d, d + timedelta(days=1)), time_zone="Mars/Base"),
            "INVALID_TIME_ZONE",
        ),
        # A folder of the zone database, a name too long for a file (INTERNAL before; found by fuzzing).
        (
            lambda d: bpb.GetBookingStatsRequest(time_range=trange(d, d + timedelta(days=1)), time_zone="Europe"),
            "INVALID_TIME_ZONE",
        ),
        (
            lambda d: bpb.GetBookingStatsRequest(time_range=trange(d, d + timedelta(days=1)), time_zone="x" * 5000),
            "INVALID_TIME_ZONE",
        ),
    ],
)
async def test_booking_stats_refuse_bad_windows_and_zones(bstub, request_, reason):
    error = await fail(As(bstub, user("host")).GetBookingStats(request_(future_hour())))
    assert refused(error) == ("INVALID_ARGUMENT", reason), error_info(error)


async def test_a_reschedule_that_would_cost_more_or_change_currency_is_refused_for_a_deposit_too(bstub, astub):
    """The card was authorized for the booking's price: a deposit's remainder, captured when the
    booking ends, could not exceed it (the end would fail for ever), nor be in another currency."""
    from google.protobuf import field_mask_pb2

    host, client = user("host"), user()
    place = await make_place(
        astub, host, deposit_policy=apb.DepositPolicy(kind=apb.DepositPolicy.DEPOSIT_PERCENT, percent=30)
    )
    start = future_hour(days=44)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    assert booking.status == B.CONFIRMED and booking.payment_status == B.PAYMENT_STATUS_AUTHORIZED
    three_hours = [trange(start, start + timedelta(hours=3))]
    longer = bpb.RescheduleBookingRequest(request_id=rid(), id=booking.id, ranges=three_hours)
    assert refused(await fail(As(bstub, client).RescheduleBooking(longer))) == (
        "FAILED_PRECONDITION",
        "PRICE_INCREASE_NOT_SUPPORTED",
    )

    patch = apb.Place(id=place.id, price_per_hour=types_pb2.Money(amount_minor=1000, currency_code="USD"))
    mask = field_mask_pb2.FieldMask(paths=["price_per_hour"])
    await As(astub, host).UpdatePlace(apb.UpdatePlaceRequest(request_id=rid(), place=patch, update_mask=mask))
    later = start + timedelta(days=1)
    next_day = [trange(later, later + timedelta(hours=1))]
    moved = bpb.RescheduleBookingRequest(request_id=rid(), id=booking.id, ranges=next_day)
    changed = await fail(As(bstub, client).RescheduleBooking(moved))
    assert refused(changed) == ("FAILED_PRECONDITION", "CURRENCY_CHANGED")
    unchanged = await As(bstub, client).GetBooking(bpb.GetBookingRequest(id=booking.id))
    assert unchanged.ranges[0].start_time.seconds == int(start.timestamp()) and unchanged.price.currency_code == "EUR"
