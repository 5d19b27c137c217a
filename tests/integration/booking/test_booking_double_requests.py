"""The same action sent several times at once under different request ids (a double click, a
client without an Idempotency-Key): one flow runs, the others are refused, and nothing is done
twice. Real booking, availability and payments servers; PostgreSQL checked as admin."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import grpc
from booking_support import As, create_request, error_info, future_hour, make_place, rid, user

from reserva.booking.v1 import booking_pb2 as bpb

B = bpb.Booking
TIMES = 5
# What a request that lost gets told: the booking moved on, or "changed meanwhile: retry" (a retry
# then gets the first or the booking as it is).
REFUSED = {("FAILED_PRECONDITION", "ILLEGAL_STATUS_TRANSITION"), ("ABORTED", "CONCURRENT_MODIFICATION")}


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
