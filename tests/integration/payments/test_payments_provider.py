"""The sandbox processor's behaviours, HMAC-signed webhooks, and reconciliation of UNKNOWN payments."""

import asyncio
import json
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from payments_helpers import Client, authorize_request, reason_of, settings

from reserva.payments.v1 import payments_pb2 as pb

S = pb.Payment.Status


@pytest.mark.parametrize(
    ("token", "failure"),
    [
        ("tok_decline_insufficient_funds", "insufficient_funds"),
        ("tok_decline_card", "card_declined"),
        ("tok_no_such_token", "invalid_payment_method"),
    ],
)
async def test_a_declined_card_fails_the_payment_and_keeps_it_for_get(payments, token, failure):
    request = authorize_request(token=token)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.AuthorizePayment(request)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    from kit.grpc_client import error_from_rpc

    error = error_from_rpc(caught.value)
    assert error.reason == "PAYMENT_DECLINED" and error.metadata["failure_reason"] == failure
    payment = await payments.GetPayment(pb.GetPaymentRequest(id=error.metadata["payment_id"]))
    assert payment.status == S.FAILED and payment.failure_reason == failure
    ledger = await payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment.id))
    assert list(ledger.entries) == []


async def test_a_slow_processor_still_authorizes(payments):
    payment = await payments.AuthorizePayment(authorize_request(token="tok_slow"))
    assert payment.status == S.AUTHORIZED


async def _unknown_payment(payments, token: str) -> str:
    request = authorize_request(token=token)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.AuthorizePayment(request)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    from kit.grpc_client import error_from_rpc

    error = error_from_rpc(caught.value)
    assert error.reason == "PROVIDER_UNAVAILABLE"
    payment = await payments.GetPayment(pb.GetPaymentRequest(id=error.metadata["payment_id"]))
    assert payment.status == S.UNKNOWN
    # A retry with the same request_id does not charge again: it reports the unknown outcome.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await payments.AuthorizePayment(request)
    assert reason_of(again.value) == "PAYMENT_OUTCOME_UNKNOWN"
    return payment.id


async def _reconcile(payments, clock):
    clock.advance(timedelta(minutes=2))
    return await payments.ReconcilePayments(
        pb.ReconcilePaymentsRequest(
            request_id=str(uuid.uuid4()), older_than=duration_pb2.Duration(seconds=60), max_payments=1000
        )
    )


async def test_a_timeout_leaves_the_payment_unknown_and_reconciliation_finds_the_charge(payments, clock):
    payment_id = await _unknown_payment(payments, "tok_timeout")
    counts = await _reconcile(payments, clock)
    assert counts.examined_count >= 1 and counts.succeeded_count >= 1
    payment = await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))
    assert payment.status == S.AUTHORIZED and payment.authorized_amount.amount_minor == 10_000
    ledger = await payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment_id))
    assert [e.kind for e in ledger.entries] == [pb.LedgerEntry.AUTHORIZATION]


async def test_a_request_the_processor_never_received_is_settled_as_failed(payments, clock):
    payment_id = await _unknown_payment(payments, "tok_lost")
    counts = await _reconcile(payments, clock)
    assert counts.failed_count >= 1
    payment = await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))
    assert payment.status == S.FAILED and payment.failure_reason == "provider_no_record"


async def test_reconciliation_ignores_fresh_payments_and_answers_retries_from_its_key(payments):
    payment_id = await _unknown_payment(payments, "tok_timeout")
    request = pb.ReconcilePaymentsRequest(
        request_id=str(uuid.uuid4()), older_than=duration_pb2.Duration(seconds=3600), max_payments=1000
    )
    first = await payments.ReconcilePayments(request)
    assert first == await payments.ReconcilePayments(request)
    payment = await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))
    assert payment.status == S.UNKNOWN


def _signed(body: bytes, secret: str = "whsec_test", at=None) -> str:
    from datetime import UTC, datetime

    from payments.adapters.sandbox_processor import sign

    return sign(secret, body, int((at or datetime.now(UTC)).timestamp()))


async def test_a_webhook_with_a_bad_signature_is_refused_and_changes_nothing(payments, clock):
    payment_id = await _unknown_payment(payments, "tok_timeout")
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "charge.authorized",
            "data": {"object": {"idempotency_key": payment_id}},
        }
    ).encode()
    for signature in [_signed(body, secret="whsec_wrong", at=clock()), "garbage", _signed(body + b" ", at=clock())]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await payments.HandleProviderWebhook(pb.HandleProviderWebhookRequest(body=body, signature=signature))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(caught.value) == "INVALID_WEBHOOK_SIGNATURE"
    stale = _signed(body, at=clock() - timedelta(hours=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.HandleProviderWebhook(pb.HandleProviderWebhookRequest(body=body, signature=stale))
    assert reason_of(caught.value) == "INVALID_WEBHOOK_SIGNATURE"
    assert (await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))).status == S.UNKNOWN
    # The same body correctly signed settles it; a replay of the event is a no-op.
    good = pb.HandleProviderWebhookRequest(body=body, signature=_signed(body, at=clock()))
    first = await payments.HandleProviderWebhook(good)
    assert not first.duplicate and first.payment_id == payment_id
    assert (await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))).status == S.AUTHORIZED
    replay = await payments.HandleProviderWebhook(good)
    assert replay.duplicate and replay.provider_event_id == first.provider_event_id


async def test_a_webhook_about_an_unknown_charge_is_acknowledged_and_ignored(payments, clock):
    body = json.dumps(
        {"id": f"evt_{uuid.uuid4().hex}", "type": "charge.authorized", "data": {"object": {"idempotency_key": "x"}}}
    ).encode()
    reply = await payments.HandleProviderWebhook(
        pb.HandleProviderWebhookRequest(body=body, signature=_signed(body, at=clock()))
    )
    assert reply.payment_id == "" and not reply.duplicate


async def test_the_processors_own_webhooks_settle_an_unknown_payment(settings_for, clock):
    from payments.bootstrap import start

    running = await start(
        settings(settings_for, sandbox_webhooks_enabled=True, sandbox_webhook_delay_s=0.0), clock=clock
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            client = Client(channel)
            processor = running.deps.processor
            deliver, processor.deliver = processor.deliver, None  # hold webhooks until the call ends
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.AuthorizePayment(authorize_request(token="tok_timeout"))
            from kit.grpc_client import error_from_rpc

            payment_id = error_from_rpc(caught.value).metadata["payment_id"]
            assert (await client.GetPayment(pb.GetPaymentRequest(id=payment_id))).status == S.UNKNOWN
            processor.deliver = deliver
            for _ in range(200):  # the webhook was queued when the charge happened; wait for it
                payment = await client.GetPayment(pb.GetPaymentRequest(id=payment_id))
                if payment.status != S.UNKNOWN:
                    break
                await asyncio.sleep(0.05)
            assert payment.status == S.AUTHORIZED
    finally:
        await running.stop(0)


async def test_the_processors_refund_webhook_settles_a_refund_whose_answer_was_lost(settings_for, clock):
    """The processor refunded but its answer never came: the refund is PENDING. Its webhook records
    it at once (ledger entry, balances, the retry's answer), with no reconciliation run, and only
    once although the webhook comes twice and the refund is retried."""
    from kit.grpc_client import error_from_rpc
    from payments.bootstrap import start

    running = await start(
        settings(settings_for, sandbox_webhooks_enabled=True, sandbox_webhook_delay_s=0.0), clock=clock
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            client = Client(channel)
            payment = await client.AuthorizePayment(authorize_request(token="tok_success+refund_timeout"))
            capture = pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id)
            assert (await client.CapturePayment(capture)).status == S.CAPTURED
            processor = running.deps.processor
            deliver, processor.deliver = processor.deliver, None  # hold webhooks until the call ends
            sent: list[tuple[bytes, str]] = []

            async def deliver_twice(body: bytes, signature: str) -> None:
                sent.append((body, signature))
                await deliver(body, signature)
                await deliver(body, signature)  # a processor may deliver an event more than once

            refund = pb.RefundPaymentRequest(
                request_id=str(uuid.uuid4()), payment_id=payment.id, reason="booking_cancelled"
            )
            refund.amount.amount_minor, refund.amount.currency_code = 4_000, "EUR"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.RefundPayment(refund)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            refund_id = error_from_rpc(caught.value).metadata["refund_id"]
            pending = await client.RefundPayment(refund)
            assert pending.refund.id == refund_id and pending.refund.status == pb.Refund.PENDING

            processor.deliver = deliver_twice
            for _ in range(200):  # the refund's webhook was queued when the processor refunded
                answer = await client.RefundPayment(refund)
                if answer.refund.status != pb.Refund.PENDING:
                    break
                await asyncio.sleep(0.05)
            assert answer.refund.id == refund_id and answer.refund.status == pb.Refund.SUCCEEDED
            assert answer.refund.provider_reference.startswith("re_")
            assert answer.payment.status == S.PARTIALLY_REFUNDED
            assert answer.payment.refunded_amount.amount_minor == 4_000
            assert any(json.loads(body)["type"] == "charge.refunded" for body, _ in sent)
            ledger = await client.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment.id))
            refunds = [(e.amount.amount_minor, e.refund_id) for e in ledger.entries if e.kind == pb.LedgerEntry.REFUND]
            assert refunds == [(4_000, refund_id)]
            charge = await processor.retrieve(idempotency_key=payment.id)
            assert charge.refunded_minor == 4_000
    finally:
        await running.stop(0)


async def test_a_retried_refund_answers_the_refund_and_its_payment_as_of_one_moment(payments, payments_server):
    """A retry of a refund whose answer was lost had read the payment before a settlement committed
    (a webhook, the reconciler): it must not answer a SUCCEEDED refund beside the payment as it was
    before it."""
    from kit.grpc_client import error_from_rpc
    from payments.service_layer.handlers import _refund_result, get_payment
    from payments.service_layer.settlement import settle_refunds_from_provider

    deps = payments_server.deps
    payment = await payments.AuthorizePayment(authorize_request(token="tok_success+refund_timeout"))
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    refund = pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, reason="booking_cancelled")
    refund.amount.amount_minor, refund.amount.currency_code = 4_000, "EUR"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(refund)
    refund_id = error_from_rpc(caught.value).metadata["refund_id"]
    before = await get_payment(deps, payment.id, caller=None)  # what the retry read first
    assert before.refunded_amount == 0
    assert await settle_refunds_from_provider(deps, payment.id) == 1  # then the settlement commits

    settled, current = await _refund_result(deps, refund_id, before.id)
    assert settled.status.value == "succeeded"
    assert current.refunded_amount == 4_000 and current.status.value == "partially_refunded"
    answer = await payments.RefundPayment(refund)  # and through the API
    assert answer.refund.status == pb.Refund.SUCCEEDED and answer.payment.status == S.PARTIALLY_REFUNDED
