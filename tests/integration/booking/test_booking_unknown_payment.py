"""A booking whose payment authorization went unanswered: the saga compensates and voids the UNKNOWN
payment; payments records the void and makes it once reconciliation learns the charge happened, so
no authorization stays open without a confirmed booking. Real availability, payments and booking
servers (payments with short sandbox delays and a clock the test moves)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from booking_support import As, booking_settings, create_request, future_hour, make_place, refused, user
from google.protobuf import duration_pb2

from booking.bootstrap import start as start_booking
from booking.entrypoints.workers import sweep_once
from kit.identity import SYSTEM
from payments.bootstrap import start as start_payments
from payments.config import PaymentsSettings
from reserva.booking.v1 import booking_pb2_grpc
from reserva.payments.v1 import payments_pb2 as ppb
from reserva.payments.v1 import payments_pb2_grpc


async def test_an_unknown_authorization_of_an_abandoned_booking_is_voided_once_settled(
    settings_for, peer_servers, astub, admin_sql
):
    offset = [timedelta()]

    def clock() -> datetime:
        return datetime.now(UTC) + offset[0]

    payments = await start_payments(
        settings_for(
            "payments",
            PaymentsSettings,
            provider_timeout_s=2.0,
            sandbox_timeout_delay_s=0.2,
            sandbox_webhooks_enabled=False,
            reconcile_interval_s=0,
            idempotency_sweep_interval_s=0,
        ),  # fmt: skip
        clock=clock,
    )
    availability, _ = peer_servers
    booking = await start_booking(booking_settings(settings_for, (availability, payments)))
    try:
        async with (
            grpc.aio.insecure_channel(booking.address) as bchannel,
            grpc.aio.insecure_channel(payments.address) as pchannel,
        ):
            client = user()
            place = await make_place(astub, user("host"))
            start = future_hour(days=23)
            request = create_request(place.id, (start, start + timedelta(hours=1)), token="tok_timeout")
            with pytest.raises(grpc.aio.AioRpcError) as answer:
                await As(booking_pb2_grpc.BookingServiceStub(bchannel), client).CreateBooking(request)
            # Told "payments unavailable, retry": the booking is given up, not left in doubt.
            assert refused(answer.value) == ("UNAVAILABLE", "PAYMENTS_UNAVAILABLE"), answer.value.details()
            row = await admin_sql.fetchrow(
                "SELECT id, status, saga_state FROM booking.bookings WHERE client_id = $1::uuid", client.user_id
            )
            assert (row["status"], row["saga_state"]) == ("expired", "compensating")
            booking_id = row["id"]
            # The saga's recovery voids what it finds: an UNKNOWN payment (the processor did authorize).
            deps = booking.deps
            while await sweep_once(deps, now=deps.clock() + timedelta(minutes=5)):
                pass
            assert await admin_sql.fetchval("SELECT saga_state FROM booking.bookings WHERE id = $1", booking_id) == (
                "done"
            )
            payment = await admin_sql.fetchrow(
                "SELECT id, status, void_requested FROM payments.payments WHERE booking_id = $1", booking_id
            )
            assert (payment["status"], payment["void_requested"]) == ("unknown", True)

            offset[0] += timedelta(minutes=2)
            stub = payments_pb2_grpc.PaymentServiceStub(pchannel)
            await stub.ReconcilePayments(
                ppb.ReconcilePaymentsRequest(
                    request_id=str(uuid.uuid4()), older_than=duration_pb2.Duration(seconds=60), max_payments=1000
                ),
                metadata=SYSTEM.to_metadata(),
            )
            settled = await admin_sql.fetchrow(
                "SELECT status, authorized_amount FROM payments.payments WHERE id = $1", payment["id"]
            )
            assert (settled["status"], settled["authorized_amount"]) == ("voided", 0)
            charge = await admin_sql.fetchval(
                "SELECT status FROM payments.sandbox_charges WHERE idempotency_key = $1", str(payment["id"])
            )
            assert charge == "voided"
    finally:
        await booking.stop(0)
        await payments.stop(0)
