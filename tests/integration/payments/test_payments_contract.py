"""Bad input -> INVALID_ARGUMENT with a readable message, the lock budget of every RPC, events
through the outbox, revenue stats, and the process entry point."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from payments_helpers import Client, authorize_request, money, reason_of

from reserva.events.v1 import envelope_pb2
from reserva.payments.v1 import events_pb2
from reserva.payments.v1 import payments_pb2 as pb
from reserva.type.v1 import types_pb2

BAD_AUTHORIZATIONS = [
    ({"request_id": ""}, "INVALID_ARGUMENT", "request_id"),
    ({"request_id": "x" * 65}, "INVALID_ARGUMENT", "request_id"),
    ({"booking_id": "not-a-uuid"}, "INVALID_ARGUMENT", "booking_id"),
    ({"user_id": ""}, "INVALID_ARGUMENT", "user_id"),
    ({"amount": money(0)}, "INVALID_AMOUNT", "amount"),
    ({"amount": money(-5)}, "INVALID_AMOUNT", "amount"),
    ({"amount": money(10**11 + 1)}, "INVALID_AMOUNT", "amount"),
    ({"amount": money(100, "XYZ")}, "INVALID_CURRENCY", "XYZ"),
    ({"amount": money(100, "eur")}, "INVALID_CURRENCY", "eur"),
    ({"payment_method_token": ""}, "INVALID_ARGUMENT", "payment_method_token"),
    ({"kind": pb.PAYMENT_KIND_UNSPECIFIED}, "INVALID_ARGUMENT", "kind"),
]


@pytest.mark.parametrize(("fields", "reason", "mentioned"), BAD_AUTHORIZATIONS)
async def test_bad_authorizations_are_invalid_arguments_with_a_clear_message(payments, fields, reason, mentioned):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.AuthorizePayment(authorize_request(**fields))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == reason and mentioned in caught.value.details()


async def test_an_authorization_without_an_amount_is_invalid(payments):
    request = authorize_request()
    request.ClearField("amount")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.AuthorizePayment(request)
    assert reason_of(caught.value) == "INVALID_AMOUNT"


@pytest.mark.parametrize(
    ("call", "request_", "reason"),
    [
        ("ListPayments", pb.ListPaymentsRequest(), "INVALID_ARGUMENT"),
        ("ListPayments", pb.ListPaymentsRequest(booking_id=str(uuid.uuid4()), page_size=201), "INVALID_PAGE_SIZE"),
        ("ListPayments", pb.ListPaymentsRequest(booking_id=str(uuid.uuid4()), page_token="@@"), "INVALID_PAGE_TOKEN"),
        ("ListLedgerEntries", pb.ListLedgerEntriesRequest(payment_id="1"), "INVALID_ARGUMENT"),
        ("BatchGetPaymentsByBooking", pb.BatchGetPaymentsByBookingRequest(), "INVALID_ARGUMENT"),
        ("GetPayment", pb.GetPaymentRequest(id="nope"), "INVALID_ARGUMENT"),
        (
            "CapturePayment",
            pb.CapturePaymentRequest(request_id="r", payment_id=str(uuid.uuid4()), amount=money(0)),
            "INVALID_AMOUNT",
        ),  # fmt: skip
        (
            "RefundPayment",
            pb.RefundPaymentRequest(request_id="r", payment_id=str(uuid.uuid4()), reason="x" * 501),
            "INVALID_ARGUMENT",
        ),  # fmt: skip
        (
            "ReconcilePayments",
            pb.ReconcilePaymentsRequest(request_id="r", older_than=duration_pb2.Duration(seconds=5)),
            "INVALID_ARGUMENT",
        ),  # fmt: skip
        (
            "ReconcilePayments",
            # Ten thousand years: the cutoff used to overflow (INTERNAL; found by fuzzing).
            pb.ReconcilePaymentsRequest(request_id="r", older_than=duration_pb2.Duration(seconds=315_537_897_599)),
            "INVALID_ARGUMENT",
        ),  # fmt: skip
        ("HandleProviderWebhook", pb.HandleProviderWebhookRequest(body=b"{}"), "INVALID_WEBHOOK_SIGNATURE"),
        ("GetRevenueStats", pb.GetRevenueStatsRequest(), "INVALID_TIME_RANGE"),
        # A folder of the zone database and a name too long for a file: INTERNAL before (ZoneInfo
        # raised IsADirectoryError / OSError; found by fuzzing).
        ("GetRevenueStats", "Europe", "INVALID_ARGUMENT"),
        ("GetRevenueStats", "9" * 400, "INVALID_ARGUMENT"),
    ],
)
async def test_other_bad_requests_are_invalid_arguments(payments, clock, call, request_, reason):
    if isinstance(request_, str):  # a revenue request in that time zone
        request_ = _revenue_request(clock, [], time_zone=request_)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(payments, call)(request_)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == reason and caught.value.details()


async def test_listing_another_users_payments_is_denied(payments_server):
    from payments_helpers import Client

    from kit.identity import Caller

    user = str(uuid.uuid4())
    async with grpc.aio.insecure_channel(payments_server.address) as channel:
        client = Client(channel, Caller(user_id=user, roles=frozenset({"client"})).to_metadata())
        await client.ListPayments(pb.ListPaymentsRequest(user_id=user))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.ListPayments(pb.ListPaymentsRequest(user_id=str(uuid.uuid4())))
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_every_rpc_stays_within_the_lock_budget(payments, lock_readings, clock):
    booking = str(uuid.uuid4())
    payment = await payments.AuthorizePayment(authorize_request(booking_id=booking))
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    await payments.RefundPayment(
        pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(10))
    )
    other = await payments.AuthorizePayment(authorize_request())
    await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=other.id))
    with pytest.raises(grpc.aio.AioRpcError):
        await payments.AuthorizePayment(authorize_request(token="tok_decline_card"))
    with pytest.raises(grpc.aio.AioRpcError):
        await payments.AuthorizePayment(authorize_request(token="tok_timeout"))
    await payments.GetPayment(pb.GetPaymentRequest(id=payment.id))
    await payments.ListPayments(pb.ListPaymentsRequest(booking_id=booking))
    await payments.ListPayments(pb.ListPaymentsRequest(user_id=payment.user_id))
    await payments.BatchGetPaymentsByBooking(pb.BatchGetPaymentsByBookingRequest(booking_ids=[booking]))
    await payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment.id))
    await payments.GetRevenueStats(_revenue_request(clock, [booking]))
    await payments.GetRevenueStats(_revenue_request(clock, []))
    clock.advance(timedelta(minutes=2))
    await payments.ReconcilePayments(
        pb.ReconcilePaymentsRequest(request_id=str(uuid.uuid4()), older_than=duration_pb2.Duration(seconds=60))
    )
    readings = [r for r in lock_readings() if r.service == "payments"]
    operations = {r.operation for r in readings}
    assert {
        "AuthorizePayment", "CapturePayment", "RefundPayment", "VoidPayment", "GetPayment", "ListPayments",
        "BatchGetPaymentsByBooking", "ListLedgerEntries", "GetRevenueStats", "ReconcilePayments",
    } <= operations  # fmt: skip
    for reading in readings:
        if reading.wrote:
            assert reading.relation_locks <= 16 and reading.advisory_locks <= 1, reading
        else:
            assert reading.total_locks <= 10, reading
    writes = [r.relation_locks for r in readings if r.wrote and not r.operation.startswith("outbox")]
    assert max(writes) <= 14  # headroom: the heaviest transaction (authorization settled) takes 13


def _revenue_request(clock, booking_ids, time_zone="Europe/Paris"):
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(clock() - timedelta(days=1))
    end.FromDatetime(clock() + timedelta(days=1))
    return pb.GetRevenueStatsRequest(
        time_range=types_pb2.TimeRange(start_time=start, end_time=end),
        booking_ids=booking_ids,
        time_zone=time_zone,
    )


async def test_revenue_stats_sum_captures_and_refunds_per_currency(payments, clock):
    booking = str(uuid.uuid4())
    for currency, amount in [("EUR", 10_000), ("EUR", 5_000), ("JPY", 3_000)]:
        p = await payments.AuthorizePayment(authorize_request(amount, currency, booking_id=booking))
        await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=p.id))
        if currency == "EUR" and amount == 5_000:
            await payments.RefundPayment(
                pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=p.id, amount=money(1_500))
            )
    stats = await payments.GetRevenueStats(_revenue_request(clock, [booking]))
    totals = {t.currency_code: t for t in stats.totals}
    assert list(totals) == ["EUR", "JPY"]
    assert totals["EUR"].captured.amount_minor == 15_000 and totals["EUR"].refunded.amount_minor == 1_500
    assert totals["EUR"].net.amount_minor == 13_500 and totals["EUR"].payment_count == 2
    assert totals["JPY"].net.amount_minor == 3_000 and totals["JPY"].payment_count == 1
    assert sum(d.revenue.net.amount_minor for d in stats.daily if d.revenue.currency_code == "EUR") == 13_500


async def test_state_changes_are_published_through_the_outbox(payments, payments_server, infra, redis_namespace):
    from kit.cache import make_redis
    from kit.outbox import stream_name

    payment = await payments.AuthorizePayment(authorize_request())
    await payments.CapturePayment(
        pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(4_000))
    )
    await payments.RefundPayment(pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    redis = make_redis(infra.redis_url)
    try:
        seen = {}
        for _ in range(600):  # up to 30 s: the relay may wait behind a loaded machine
            for _, fields in await redis.xrange(stream_name(redis_namespace, "payments")):
                envelope = envelope_pb2.EventEnvelope.FromString(fields[b"envelope"])
                if envelope.aggregate_id == payment.id:
                    seen[envelope.event_type] = envelope
            if len(seen) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    assert set(seen) == {"payment.authorized", "payment.captured", "payment.refunded"}
    captured = events_pb2.PaymentCaptured()
    seen["payment.captured"].payload.Unpack(captured)
    assert captured.amount.amount_minor == 4_000 and captured.released_amount.amount_minor == 6_000
    refunded = events_pb2.PaymentRefunded()
    seen["payment.refunded"].payload.Unpack(refunded)
    assert refunded.fully_refunded and refunded.refunded_total.amount_minor == 4_000


def test_the_server_process_prints_ready_and_serves(infra, database, redis_namespace):
    from kit.provision import service_database_url

    env = dict(
        os.environ,
        PAYMENTS_DATABASE_URL=service_database_url(infra.admin_database_url, database, "payments"),
        PAYMENTS_REDIS_URL=infra.redis_url,
        PAYMENTS_REDIS_NAMESPACE=redis_namespace,
        PAYMENTS_GRPC_PORT="0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "payments.entrypoints.server"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("READY "), line
        port = int(line.split()[1])

        async def get() -> grpc.StatusCode:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                from payments_helpers import Client

                try:
                    await Client(channel).GetPayment(pb.GetPaymentRequest(id=str(uuid.uuid4())))
                except grpc.aio.AioRpcError as error:
                    return error.code()

        assert asyncio.run(get()) is grpc.StatusCode.NOT_FOUND
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


async def test_only_the_platform_and_agents_may_refund_never_the_payer(payments_server):
    from kit.identity import Caller

    payer = Caller(user_id=str(uuid.uuid4()), roles=frozenset({"client", "host"}))
    async with grpc.aio.insecure_channel(payments_server.address) as channel:
        system = Client(channel)
        payment = await system.AuthorizePayment(authorize_request(user_id=payer.user_id))
        await system.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
        refund = pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(100))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Client(channel, payer.to_metadata()).RefundPayment(refund)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(refused.value) == "NOT_ALLOWED_TO_REFUND"
        agent = Caller(user_id=str(uuid.uuid4()), roles=frozenset({"agent"}))
        done = await Client(channel, agent.to_metadata()).RefundPayment(refund)
        assert done.payment.refunded_amount.amount_minor == 100
