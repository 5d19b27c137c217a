"""The saga's failure paths, idempotent retries, authorization, bad input, expiry by the sweeper
and a crash between steps, against real servers."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from booking_support import (
    AGENT,
    As,
    booking_settings,
    create_request,
    error_info,
    future_hour,
    make_place,
    rid,
    user,
)

from booking.bootstrap import start as start_booking
from booking.entrypoints.workers import sweep_once
from reserva.availability.v1 import availability_pb2 as apb
from reserva.booking.v1 import booking_pb2 as bpb

B = bpb.Booking


async def _fail(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_declined_card_ends_payment_failed_and_frees_the_slot(bstub, astub, admin_sql):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=10)
    request = create_request(place.id, (start, start + timedelta(hours=1)), token="tok_decline_card")
    error = await _fail(As(bstub, client).CreateBooking(request))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and error_info(error)[0] == "PAYMENT_DECLINED"
    row = await admin_sql.fetchrow(
        "SELECT id, status, hold_id FROM booking.bookings WHERE client_id = $1::uuid", client.user_id
    )
    assert row["status"] == "payment_failed"
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", row["hold_id"]) == (
        "released"
    )
    retry = await _fail(As(bstub, client).CreateBooking(request))
    assert error_info(retry)[0] == "PAYMENT_DECLINED"


async def test_a_taken_slot_answers_slot_unavailable_with_the_conflict(bstub, astub, admin_sql):
    place = await make_place(astub, user("host"))
    start = future_hour(days=11)
    await As(bstub, user()).CreateBooking(create_request(place.id, (start, start + timedelta(hours=2))))
    loser = user()
    request = create_request(place.id, (start + timedelta(hours=1), start + timedelta(hours=3)))
    error = await _fail(As(bstub, loser).CreateBooking(request))
    reason, _, details = error_info(error)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and reason == "SLOT_UNAVAILABLE"
    conflict = apb.SlotConflict()
    assert details and details[0].Unpack(conflict) and conflict.conflicting_ranges
    status = await admin_sql.fetchval("SELECT status FROM booking.bookings WHERE client_id = $1::uuid", loser.user_id)
    assert status == "rejected"


async def test_payments_down_answers_unavailable_and_leaves_nothing_half_booked(
    settings_for, peer_servers, astub, admin_sql
):
    availability, _ = peer_servers
    settings = booking_settings(settings_for, (availability, type("Gone", (), {"address": "127.0.0.1:1"})()))
    server = await start_booking(settings)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            from reserva.booking.v1 import booking_pb2_grpc

            stub = booking_pb2_grpc.BookingServiceStub(channel)
            client = user()
            place = await make_place(astub, user("host"))
            start = future_hour(days=12)
            error = await _fail(
                As(stub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
            )
            assert error.code() is grpc.StatusCode.UNAVAILABLE
            row = await admin_sql.fetchrow(
                "SELECT status, hold_id FROM booking.bookings WHERE client_id = $1::uuid", client.user_id
            )
            assert row["status"] == "expired"
            hold = await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", row["hold_id"])
            assert hold == "released"
    finally:
        await server.stop(0)


async def test_a_retry_returns_the_same_booking_and_other_parameters_are_refused(bstub, astub):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=13)
    request = create_request(place.id, (start, start + timedelta(hours=1)))
    first = await As(bstub, client).CreateBooking(request)
    again = await As(bstub, client).CreateBooking(request)
    assert again.id == first.id and again.status == B.CONFIRMED
    request.guests = 3
    error = await _fail(As(bstub, client).CreateBooking(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and error_info(error)[0] == "IDEMPOTENCY_KEY_REUSED"


async def test_strangers_cannot_see_or_cancel_and_hosts_cannot_approve_others_places(bstub, astub):
    host, client, stranger = user("host"), user(), user()
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=14)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    error = await _fail(As(bstub, stranger).GetBooking(bpb.GetBookingRequest(id=booking.id)))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    error = await _fail(As(bstub, stranger).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id)))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    other_host = user("host")
    error = await _fail(
        As(bstub, other_host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id))
    )
    assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    error = await _fail(As(bstub, client).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id)))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED and error_info(error)[0] == "NOT_PLACE_OWNER"
    mine = await As(bstub, client).ListBookings(bpb.ListBookingsRequest())
    assert [b.id for b in mine.bookings] == [booking.id]
    theirs = await As(bstub, host).ListBookings(bpb.ListBookingsRequest(host_id=host.user_id))
    assert [b.id for b in theirs.bookings] == [booking.id]
    assert not (await As(bstub, stranger).ListBookings(bpb.ListBookingsRequest())).bookings


@pytest.mark.parametrize("order_by", [" ", "start_time up", "price", "create_time desc extra"])
async def test_a_list_ordered_by_anything_but_a_known_field_is_refused_with_a_reason(bstub, order_by):
    # A blank order_by (found by fuzzing) answered INTERNAL: it split into no words at all.
    error = await _fail(As(bstub, user()).ListBookings(bpb.ListBookingsRequest(order_by=order_by)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and error_info(error)[0] == "INVALID_ORDER_BY", error
    newest_first = await As(bstub, user()).ListBookings(bpb.ListBookingsRequest(order_by="  create_time   DESC "))
    assert not newest_first.bookings


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda r: r.ClearField("ranges"), "INVALID_TIME_RANGE"),
        (lambda r: setattr(r, "guests", 0), "INVALID_GUESTS"),
        (lambda r: setattr(r, "guests", 99), "INVALID_GUESTS"),
        (lambda r: setattr(r, "request_id", ""), "INVALID_REQUEST_ID"),
        (lambda r: setattr(r, "place_id", "not-a-uuid"), "INVALID_ID"),
        (lambda r: setattr(r, "note", "x" * 1001), "INVALID_NOTE"),
    ],
)
async def test_bad_input_is_invalid_argument_with_a_reason(bstub, astub, mutate, reason):
    place = await make_place(astub, user("host"))
    start = future_hour(days=15)
    request = create_request(place.id, (start, start + timedelta(hours=1)))
    mutate(request)
    error = await _fail(As(bstub, user()).CreateBooking(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and error_info(error)[0] == reason


async def test_reversed_range_is_invalid_argument(bstub, astub):
    place = await make_place(astub, user("host"))
    start = future_hour(days=15)
    error = await _fail(As(bstub, user()).CreateBooking(create_request(place.id, (start, start - timedelta(hours=1)))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and error_info(error)[0] == "INVALID_TIME_RANGE"


async def test_the_sweeper_expires_pending_requests_and_unpaid_approvals(bstub, astub, booking_server, admin_sql):
    host, client = user("host"), user()
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=16)
    requested = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    later = start + timedelta(hours=2)
    approved = await As(bstub, client).CreateBooking(create_request(place.id, (later, later + timedelta(hours=1))))
    await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=approved.id))
    deps = booking_server.deps
    future = deps.clock() + timedelta(days=3)
    while await sweep_once(deps, now=future):
        pass
    for b in (requested, approved):
        got = await As(bstub, AGENT).GetBooking(bpb.GetBookingRequest(id=b.id))
        assert got.status == B.EXPIRED
    hold = await admin_sql.fetchval(
        "SELECT h.state FROM availability.holds h JOIN booking.bookings b ON b.hold_id = h.id::text "
        "WHERE b.id = $1::uuid",
        approved.id,
    )
    assert hold == "released"


async def test_the_sweeper_completes_bookings_after_their_end(bstub, astub, booking_server):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=17)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    deps = booking_server.deps
    while await sweep_once(deps, now=start + timedelta(hours=2)):
        pass
    got = await As(bstub, client).GetBooking(bpb.GetBookingRequest(id=booking.id))
    assert got.status == B.COMPLETED


async def _crash_after(step: str, settings_for, peer_servers, client, request) -> None:
    """CreateBooking on a booking server that crashes (as if killed) right after the saga's `step`."""
    crashing = await start_booking(booking_settings(settings_for, peer_servers, saga_crash_after_step=step))
    try:
        async with grpc.aio.insecure_channel(crashing.address) as channel:
            from reserva.booking.v1 import booking_pb2_grpc

            stub = booking_pb2_grpc.BookingServiceStub(channel)
            assert (await _fail(As(stub, client).CreateBooking(request))).code() is grpc.StatusCode.INTERNAL
    finally:
        await crashing.stop(0)


async def _recover(settings_for, peer_servers) -> None:
    """A restarted booking server's sweeper, run until it finds nothing more to recover."""
    restarted = await start_booking(booking_settings(settings_for, peer_servers))
    try:
        deps = restarted.deps
        while await sweep_once(deps, now=deps.clock() + timedelta(minutes=5)):
            pass
    finally:
        await restarted.stop(0)


async def _booking_of(admin_sql, client):
    """The client's one booking as stored: id, status, saga state, hold and payment."""
    return await admin_sql.fetchrow(
        "SELECT id, status, saga_state, hold_id, payment_id FROM booking.bookings WHERE client_id = $1::uuid",
        client.user_id,
    )


async def _crashed_booking(step: str, days: int, settings_for, peer_servers, astub, admin_sql, **request_kw):
    """The stored row of a new client's booking whose CreateBooking crashed right after `step`."""
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=days)
    request = create_request(place.id, (start, start + timedelta(hours=1)), **request_kw)
    await _crash_after(step, settings_for, peer_servers, client, request)
    return await _booking_of(admin_sql, client)


async def test_a_crash_after_the_hold_is_recovered_to_a_terminal_state(settings_for, peer_servers, astub, admin_sql):
    row = await _crashed_booking("authorize", 21, settings_for, peer_servers, astub, admin_sql)
    assert (row["status"], row["saga_state"]) == ("held", "authorizing")
    booking_id, hold_id = row["id"], row["hold_id"]
    await _recover(settings_for, peer_servers)
    row = await admin_sql.fetchrow("SELECT status, saga_state FROM booking.bookings WHERE id = $1", booking_id)
    assert (row["status"], row["saga_state"]) == ("expired", "done")
    statuses = await admin_sql.fetch("SELECT status FROM payments.payments WHERE booking_id = $1", booking_id)
    assert [p["status"] for p in statuses] == ["voided"]
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", hold_id) == "released"


async def test_a_crash_after_the_capture_is_recovered_to_a_confirmed_booking_charged_once(
    settings_for, peer_servers, astub, admin_sql
):
    """The money moved, the booking had not yet recorded it (saga 'confirming'): recovery replays
    the confirmation and the capture under their request ids and confirms the booking."""
    row = await _crashed_booking("capture", 24, settings_for, peer_servers, astub, admin_sql)
    assert (row["status"], row["saga_state"]) == ("held", "confirming")
    assert await admin_sql.fetchval("SELECT status FROM payments.payments WHERE id = $1::uuid", row["payment_id"]) == (
        "captured"
    )
    await _recover(settings_for, peer_servers)
    ended = await admin_sql.fetchrow("SELECT status, saga_state FROM booking.bookings WHERE id = $1", row["id"])
    assert (ended["status"], ended["saga_state"]) == ("confirmed", "done")
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", row["hold_id"]) == (
        "confirmed"
    )
    captures = await admin_sql.fetchval(
        "SELECT count(*) FROM payments.ledger_entries WHERE payment_id = $1::uuid AND kind = 'capture'",
        row["payment_id"],
    )
    assert captures == 1


async def test_saga_steps_the_probe_does_not_measure_write_the_same_as_measured_ones(
    settings_for, peer_servers, bstub, astub, admin_sql
):
    """Unmeasured steps save as lone statements (no BEGIN/COMMIT): the booking, its version and its
    history end exactly as on the strict server, where every step is a measured transaction."""
    unmeasured = await start_booking(
        booking_settings(settings_for, peer_servers, lock_probe_strict=False, lock_probe_sample_rate=0.0)
    )
    try:
        async with grpc.aio.insecure_channel(unmeasured.address) as channel:
            from reserva.booking.v1 import booking_pb2_grpc

            fast = booking_pb2_grpc.BookingServiceStub(channel)
            place = await make_place(astub, user("host"))
            start = future_hour(days=14)
            outcomes = []
            for stub, hour in ((bstub, 0), (fast, 2)):
                client = user()
                slot = (start + timedelta(hours=hour), start + timedelta(hours=hour + 1))
                booking = await As(stub, client).CreateBooking(create_request(place.id, slot))
                assert booking.status == B.CONFIRMED
                row = await admin_sql.fetchrow(
                    "SELECT status, saga_state, version, "
                    "  (SELECT array_agg(h.to_status ORDER BY h.seq) FROM booking.booking_history h"
                    "    WHERE h.booking_id = b.id) AS history "
                    "FROM booking.bookings b WHERE id = $1::uuid",
                    booking.id,
                )
                outcomes.append(dict(row))
            measured, lone = outcomes
            assert lone == measured and lone["status"] == "confirmed" and lone["history"]
    finally:
        await unmeasured.stop(0)


async def test_a_capture_refused_after_the_slot_was_confirmed_frees_the_slot_and_voids_the_authorization(
    bstub, astub, admin_sql
):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=13)
    slot = (start, start + timedelta(hours=1))
    request = create_request(place.id, slot, token="tok_success+capture_declined")
    error = await _fail(As(bstub, client).CreateBooking(request))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    reason, metadata, _ = error_info(error)
    assert reason == "PAYMENT_DECLINED" and metadata.get("failure_reason") == "capture_declined"
    row = await _booking_of(admin_sql, client)
    assert (row["status"], row["saga_state"]) == ("payment_failed", "done")
    hold = await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", row["hold_id"])
    assert hold == "released"
    payment = await admin_sql.fetchval("SELECT status FROM payments.payments WHERE id = $1::uuid", row["payment_id"])
    assert payment == "voided"
    # The slot is free again: someone else books it.
    await As(bstub, user()).CreateBooking(create_request(place.id, slot))
    retry = await _fail(As(bstub, client).CreateBooking(request))
    assert error_info(retry)[0] == "PAYMENT_DECLINED"


async def test_recovery_of_a_saga_whose_capture_is_refused_ends_payment_failed_with_nothing_kept(
    settings_for, peer_servers, astub, admin_sql
):
    row = await _crashed_booking(
        "confirm_hold", 22, settings_for, peer_servers, astub, admin_sql, token="tok_success+capture_declined"
    )
    assert (row["status"], row["saga_state"]) == ("held", "confirming")  # the slot confirmed, not yet paid
    await _recover(settings_for, peer_servers)
    ended = await admin_sql.fetchrow("SELECT status, saga_state FROM booking.bookings WHERE id = $1", row["id"])
    assert (ended["status"], ended["saga_state"]) == ("payment_failed", "done")
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", row["hold_id"]) == (
        "released"
    )
    payment = await admin_sql.fetchval("SELECT status FROM payments.payments WHERE id = $1::uuid", row["payment_id"])
    assert payment == "voided"


async def test_a_void_the_processor_refuses_does_not_stop_a_compensation(bstub, astub, admin_sql):
    client = user()
    place = await make_place(astub, user("host"))
    start = future_hour(days=23)
    request = create_request(
        place.id, (start, start + timedelta(hours=1)), token="tok_success+capture_declined+void_declined"
    )
    error = await _fail(As(bstub, client).CreateBooking(request))
    assert error_info(error)[0] == "PAYMENT_DECLINED"
    row = await _booking_of(admin_sql, client)
    assert (row["status"], row["saga_state"]) == ("payment_failed", "done")
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", row["hold_id"]) == (
        "released"
    )
    # Nothing was charged; the authorization the processor would not release lapses on its own.
    payment = await admin_sql.fetchrow(
        "SELECT status, captured_amount FROM payments.payments WHERE id = $1::uuid", row["payment_id"]
    )
    assert (payment["status"], payment["captured_amount"]) == ("authorized", 0)
