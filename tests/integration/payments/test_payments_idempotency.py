"""Idempotency keys: same key and parameters -> the stored result (also after a restart); other
parameters -> IDEMPOTENCY_KEY_REUSED; the same key while in flight -> ABORTED, never two charges."""

import asyncio
import uuid

import grpc
import pytest
from payments_helpers import Client, authorize_request, money, reason_of, settings

from reserva.payments.v1 import payments_pb2 as pb


async def test_the_same_key_with_the_same_parameters_returns_the_stored_payment(payments):
    request = authorize_request()
    first = await payments.AuthorizePayment(request)
    assert await payments.AuthorizePayment(request) == first
    listed = await payments.ListPayments(pb.ListPaymentsRequest(booking_id=request.booking_id))
    assert [p.id for p in listed.payments] == [first.id]


async def test_a_declined_authorization_is_replayed_as_the_same_decline(payments):
    request = authorize_request(token="tok_decline_card")
    errors = []
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await payments.AuthorizePayment(request)
        errors.append((caught.value.code(), reason_of(caught.value), caught.value.details()))
    assert errors[0] == errors[1] and errors[0][1] == "PAYMENT_DECLINED"


async def test_the_same_key_with_other_parameters_is_rejected(payments):
    request = authorize_request()
    await payments.AuthorizePayment(request)
    other = pb.AuthorizePaymentRequest()
    other.CopyFrom(request)
    other.amount.amount_minor += 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.AuthorizePayment(other)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "IDEMPOTENCY_KEY_REUSED"
    assert "request_id" in caught.value.details()


async def test_capture_and_refund_retries_return_the_original_result(payments):
    payment = await payments.AuthorizePayment(authorize_request())
    capture = pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(8_000))
    captured = await payments.CapturePayment(capture)
    assert await payments.CapturePayment(capture) == captured
    refund = pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(1_000))
    first = await payments.RefundPayment(refund)
    again = await payments.RefundPayment(refund)
    assert again == first
    now = await payments.GetPayment(pb.GetPaymentRequest(id=payment.id))
    assert now.refunded_amount.amount_minor == 1_000
    other = pb.RefundPaymentRequest(request_id=refund.request_id, payment_id=payment.id, amount=money(2_000))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(other)
    assert reason_of(caught.value) == "IDEMPOTENCY_KEY_REUSED"


async def test_a_concurrent_request_with_the_same_key_is_aborted_and_charges_once(payments):
    request = authorize_request(token="tok_slow")
    results = await asyncio.gather(*(payments.AuthorizePayment(request) for _ in range(5)), return_exceptions=True)
    succeeded = [r for r in results if isinstance(r, pb.Payment)]
    aborted = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(succeeded) >= 1 and len({p.id for p in succeeded}) == 1
    for error in aborted:
        assert error.code() is grpc.StatusCode.ABORTED and "in progress" in error.details()
    listed = await payments.ListPayments(pb.ListPaymentsRequest(booking_id=request.booking_id))
    assert len(listed.payments) == 1


async def test_a_stored_result_survives_a_restart(settings_for, clock):
    from payments.bootstrap import start

    request = authorize_request()
    running = await start(settings(settings_for), clock=clock)
    async with grpc.aio.insecure_channel(running.address) as channel:
        first = await Client(channel).AuthorizePayment(request)
    await running.stop(0)
    running = await start(settings(settings_for), clock=clock)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            assert await Client(channel).AuthorizePayment(request) == first
    finally:
        await running.stop(0)


async def test_the_sweeper_keeps_keys_for_at_least_a_day(payments, payments_server, clock):
    from payments.service_layer.settlement import sweep_idempotency_keys

    request = authorize_request()
    first = await payments.AuthorizePayment(request)
    deps = payments_server.deps
    from datetime import timedelta

    await sweep_idempotency_keys(deps, timedelta(hours=24), batch=10_000)
    assert await payments.AuthorizePayment(request) == first
