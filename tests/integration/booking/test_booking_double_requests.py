"""The same action sent several times at once under different request ids (a double click, a
client without an Idempotency-Key): one flow runs, the others are refused, and nothing is done
twice. Real booking, availability and payments servers; PostgreSQL checked as admin."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, timedelta

import grpc
from booking_support import As, create_request, error_info, fail, future_hour, make_place, rid, user

from reserva.booking.v1 import booking_pb2 as bpb

B = bpb.Booking
TIMES = 5
# What a request that lost gets told: the booking moved on, "changed meanwhile: retry", or "the
# first one's flow is running: retry" (a retry then gets the booking as the first one left it).
REFUSED = {
    ("FAILED_PRECONDITION", "ILLEGAL_STATUS_TRANSITION"),
    ("ABORTED", "CONCURRENT_MODIFICATION"),
    ("UNAVAILABLE", "BOOKING_IN_PROGRESS"),
}


def _answers(results) -> Counter:
    return Counter(
        (r.code().name, error_info(r)[0]) if isinstance(r, grpc.aio.AioRpcError) else ("OK", B.Status.Name(r.status))
        for r in results
    )


async def _requested(bstub, astub, days: int):
    host, client = user("host"), user("client")
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=days)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    assert booking.status == B.REQUESTED
    return host, client, booking


async def test_approvals_sent_at_once_approve_once_and_keep_the_hold(bstub, astub, admin_sql):
    host, _, booking = await _requested(bstub, astub, days=41)
    approve = As(bstub, host).ApproveBooking
    results = await asyncio.gather(
        *(approve(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id)) for _ in range(TIMES)),
        return_exceptions=True,
    )
    answers = _answers(results)
    assert answers[("OK", "APPROVED")] >= 1
    assert set(answers) <= {("OK", "APPROVED"), *REFUSED}, answers

    row = await admin_sql.fetchrow(
        "SELECT status, saga_state, hold_id::text AS hold_id FROM booking.bookings WHERE id = $1::uuid", booking.id
    )
    assert (row["status"], row["saga_state"]) == ("approved", "done")
    # The approved booking's hold is live: no losing flow released it.
    holds = await admin_sql.fetch(
        "SELECT id::text AS id, state FROM availability.holds WHERE booking_id = $1", booking.id
    )
    assert [(h["id"], h["state"]) for h in holds] == [(row["hold_id"], "held")]


async def test_payments_sent_at_once_authorize_and_capture_one_payment(bstub, astub, admin_sql):
    host, client, booking = await _requested(bstub, astub, days=42)
    await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id))
    confirm = As(bstub, client).ConfirmBooking
    results = await asyncio.gather(
        *(
            confirm(bpb.ConfirmBookingRequest(request_id=rid(), id=booking.id, payment_method_token="tok_success"))
            for _ in range(TIMES)
        ),
        return_exceptions=True,
    )
    answers = _answers(results)
    assert answers[("OK", "CONFIRMED")] >= 1
    assert set(answers) <= {("OK", "CONFIRMED"), *REFUSED}, answers

    row = await admin_sql.fetchrow(
        "SELECT status, payment_id::text AS payment_id FROM booking.bookings WHERE id = $1::uuid", booking.id
    )
    payments = await admin_sql.fetch(
        "SELECT id::text AS id, status FROM payments.payments WHERE booking_id = $1::uuid", booking.id
    )
    # One card authorization, captured, and it is the booking's.
    assert row["status"] == "confirmed"
    assert [(p["id"], p["status"]) for p in payments] == [(row["payment_id"], "captured")]


async def test_an_approval_after_an_interrupted_and_recovered_one_gets_a_live_hold(
    bstub, astub, admin_sql, booking_server
):
    """An approval interrupted after availability made its hold (a timeout, a crash) is recovered:
    the hold is released and the request stands. Approving again must not be handed that released
    hold back by the replay of the same request id."""
    from booking.domain.model import TimeRange, derived_request_id
    from booking.entrypoints.workers import sweep_once

    host, _, booking = await _requested(bstub, astub, days=43)
    start = booking.ranges[0]
    # What the interrupted approval made: the very call the booking service makes.
    deps = booking_server.deps
    interrupted = await deps.availability.hold_slots(
        request_id=derived_request_id(booking.id, "hold"),
        place_id=booking.place_id,
        ranges=(TimeRange(start.start_time.ToDatetime(UTC), start.end_time.ToDatetime(UTC)),),
        units=booking.units,
        ttl=timedelta(seconds=deps.settings.approval_payment_ttl_s),
        booking_id=booking.id,
        holder_id=booking.client_id,
    )
    await admin_sql.execute(
        "UPDATE booking.bookings SET saga_state = 'holding', due_time = now() - interval '1 minute'"
        " WHERE id = $1::uuid",
        booking.id,
    )
    while await sweep_once(deps, now=deps.clock() + timedelta(minutes=5)):
        pass
    row = await admin_sql.fetchrow("SELECT status, saga_state FROM booking.bookings WHERE id = $1::uuid", booking.id)
    assert (row["status"], row["saga_state"]) == ("requested", "done")
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", interrupted.id) == (
        "released"
    )

    approved = await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id))
    assert approved.status == B.APPROVED and approved.hold_id != interrupted.id
    state = await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", approved.hold_id)
    assert state == "held"


async def test_an_approval_sent_while_one_runs_is_told_to_retry(bstub, astub, admin_sql):
    """A retry of an approval whose flow is still running (a gateway's retry on a timeout, a second
    click) is UNAVAILABLE BOOKING_IN_PROGRESS, retryable, not a refusal: the flow may well succeed."""
    host, _, booking = await _requested(bstub, astub, days=45)
    await admin_sql.execute(
        "UPDATE booking.bookings SET saga_state = 'holding', due_time = now() + interval '1 minute'"
        " WHERE id = $1::uuid",
        booking.id,
    )
    error = await fail(As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id)))
    assert (error.code().name, error_info(error)[0]) == ("UNAVAILABLE", "BOOKING_IN_PROGRESS")
