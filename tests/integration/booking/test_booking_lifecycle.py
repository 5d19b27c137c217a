"""Every transition through real gRPC servers: instant booking, request -> approve -> confirm,
reject, cancel with refund, no-show, completion, and the competing-requests rejection."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from booking_support import AGENT, As, create_request, error_info, future_hour, make_place, rid, user

from reserva.availability.v1 import availability_pb2 as apb
from reserva.booking.v1 import booking_pb2 as bpb

B = bpb.Booking


async def test_an_instant_booking_is_held_paid_and_confirmed(bstub, astub, admin_sql):
    host, client = user("host"), user("client")
    place = await make_place(astub, host)
    start = future_hour()
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=2))))
    assert booking.status == B.CONFIRMED
    assert booking.saga_state == B.SAGA_STATE_DONE
    assert booking.price.amount_minor == 4000 and booking.price.currency_code == "EUR"
    assert booking.host_id == host.user_id and booking.hold_id and booking.payment_id
    hold_state = await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", booking.hold_id)
    assert hold_state == "confirmed"
    full = await As(bstub, client).GetBooking(bpb.GetBookingRequest(id=booking.id))
    assert full.payment_status == B.PAYMENT_STATUS_CAPTURED
    assert [h.to_status for h in full.history] == [B.HELD, B.CONFIRMED]


async def test_request_place_goes_requested_approved_confirmed(bstub, astub):
    host, client = user("host"), user("client")
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=6)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    assert booking.status == B.REQUESTED and not booking.hold_id
    approved = await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id))
    assert approved.status == B.APPROVED and approved.hold_id
    confirmed = await As(bstub, client).ConfirmBooking(
        bpb.ConfirmBookingRequest(request_id=rid(), id=booking.id, payment_method_token="tok_success")
    )
    assert confirmed.status == B.CONFIRMED and confirmed.payment_id


async def test_approving_one_request_rejects_the_overlapping_ones(bstub, astub, admin_sql):
    host = user("host")
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=7)
    clients = [user("client") for _ in range(4)]
    ranges = [
        (start, start + timedelta(hours=2)),
        (start + timedelta(hours=1), start + timedelta(hours=3)),  # overlaps the first
        (start - timedelta(hours=1), start + timedelta(minutes=30)),  # overlaps the first
        (start + timedelta(hours=2), start + timedelta(hours=4)),  # touches only: kept
    ]
    bookings = [
        await As(bstub, c).CreateBooking(create_request(place.id, r)) for c, r in zip(clients, ranges, strict=True)
    ]
    await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=bookings[0].id))
    statuses = [(await As(bstub, AGENT).GetBooking(bpb.GetBookingRequest(id=b.id))).status for b in bookings]
    assert statuses == [B.APPROVED, B.REJECTED, B.REJECTED, B.REQUESTED]
    events = await admin_sql.fetch(
        "SELECT aggregate_id FROM booking.outbox WHERE event_type = 'booking.rejected' AND aggregate_id = ANY($1)",
        [b.id for b in bookings],
    )
    assert sorted(e["aggregate_id"] for e in events) == sorted([bookings[1].id, bookings[2].id])


async def test_host_rejects_and_illegal_transition_names_the_status(bstub, astub):
    host, client = user("host"), user("client")
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=8)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    rejected = await As(bstub, host).RejectBooking(
        bpb.RejectBookingRequest(request_id=rid(), id=booking.id, reason="no")
    )
    assert rejected.status == B.REJECTED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=booking.id))
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "REJECTED" in caught.value.details()
    assert error_info(caught.value)[0] == "ILLEGAL_STATUS_TRANSITION"


async def test_client_cancels_early_with_a_full_refund_and_the_slot_frees(bstub, astub, admin_sql):
    host, client = user("host"), user("client")
    place = await make_place(astub, host)
    start = future_hour(days=9)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    cancelled = await As(bstub, client).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id))
    assert cancelled.status == B.CANCELLED and cancelled.saga_state == B.SAGA_STATE_DONE
    assert cancelled.cancellation.refund_percent == 100
    assert cancelled.cancellation.refund_amount.amount_minor == 2000 and cancelled.cancellation.refund_id
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", booking.hold_id) == (
        "released"
    )
    again = await As(bstub, user("client")).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    assert again.status == B.CONFIRMED


async def test_a_refund_the_processor_refuses_ends_the_cancellation_with_the_failed_refund_named(
    bstub, astub, admin_sql
):
    host, client = user("host"), user("client")
    place = await make_place(astub, host)
    start = future_hour(days=14)
    request = create_request(place.id, (start, start + timedelta(hours=1)), token="tok_success+refund_declined")
    booking = await As(bstub, client).CreateBooking(request)
    cancelled = await As(bstub, client).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id))
    # The cancellation stands and the saga is over: asking again would only replay the refusal.
    assert cancelled.status == B.CANCELLED and cancelled.saga_state == B.SAGA_STATE_DONE
    assert cancelled.payment_status == B.PAYMENT_STATUS_CAPTURED  # the money was not given back
    refund = await admin_sql.fetchrow(
        "SELECT id::text, status FROM payments.refunds WHERE payment_id = $1::uuid", booking.payment_id
    )
    assert refund["status"] == "failed" and cancelled.cancellation.refund_id == refund["id"]
    row = await admin_sql.fetchrow("SELECT failure_reason FROM booking.bookings WHERE id = $1::uuid", booking.id)
    assert row["failure_reason"] == "refund_declined"
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", booking.hold_id) == (
        "released"
    )


async def test_a_cancellation_whose_void_the_processor_refuses_still_ends(bstub, astub, admin_sql):
    host, client = user("host"), user("client")
    place = await make_place(
        astub, host, deposit_policy=apb.DepositPolicy(kind=apb.DepositPolicy.DEPOSIT_PERCENT, percent=30)
    )
    start = future_hour(days=15)
    request = create_request(place.id, (start, start + timedelta(hours=1)), token="tok_success+void_declined")
    booking = await As(bstub, client).CreateBooking(request)
    assert booking.payment_status == B.PAYMENT_STATUS_AUTHORIZED  # a deposit: captured only when it ends
    cancelled = await As(bstub, client).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id))
    assert cancelled.status == B.CANCELLED and cancelled.saga_state == B.SAGA_STATE_DONE
    payment = await admin_sql.fetchrow(
        "SELECT status, captured_amount FROM payments.payments WHERE id = $1::uuid", booking.payment_id
    )
    assert (payment["status"], payment["captured_amount"]) == ("authorized", 0)  # lapses at the processor
    assert await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", booking.hold_id) == (
        "released"
    )
