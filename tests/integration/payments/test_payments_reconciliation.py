"""Failure paths that only reconciliation can close, on the real server and database: refunds whose
provider call went unanswered (the answer lost, or the request lost on the way) stay PENDING until the
reconciler settles them; voids asked for while an authorization's outcome is unknown (or whose own
answer was lost) are recorded and carried out once the provider has answered. The sandbox's test
tokens choose the failure ("tok_success+refund_timeout", "tok_timeout+void_lost", ...)."""

import asyncio
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from payments_helpers import PATIENT_PROVIDER_TIMEOUT_S, Client, authorize_request, money, reason_of, settings

from kit.grpc_client import error_from_rpc
from reserva.events.v1 import envelope_pb2
from reserva.payments.v1 import events_pb2
from reserva.payments.v1 import payments_pb2 as pb

S = pb.Payment.Status
K = pb.LedgerEntry.Kind


async def _reconcile(payments, clock) -> pb.ReconcilePaymentsResponse:
    clock.advance(timedelta(minutes=2))
    return await payments.ReconcilePayments(
        pb.ReconcilePaymentsRequest(
            request_id=str(uuid.uuid4()), older_than=duration_pb2.Duration(seconds=60), max_payments=1000
        )
    )


async def _ledger(payments, payment_id):
    reply = await payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment_id))
    return [(e.kind, e.amount.amount_minor, e.refund_id) for e in reply.entries]


async def _get(payments, payment_id) -> pb.Payment:
    return await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))


async def _unavailable(call) -> dict:
    """The call fails UNAVAILABLE (PROVIDER_UNAVAILABLE); returns the error's metadata."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, caught.value
    error = error_from_rpc(caught.value)
    assert error.reason == "PROVIDER_UNAVAILABLE"
    return error.metadata


async def _captured(payments, token: str, amount=10_000) -> pb.Payment:
    payment = await payments.AuthorizePayment(authorize_request(amount, token=token))
    captured = await payments.CapturePayment(
        pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id)
    )
    assert captured.status == S.CAPTURED
    return captured


async def _unknown(payments, token: str) -> str:
    metadata = await _unavailable(payments.AuthorizePayment(authorize_request(token=token)))
    assert (await _get(payments, metadata["payment_id"])).status == S.UNKNOWN
    return metadata["payment_id"]


async def _events(infra, redis_namespace, payment_id: str, wanted: set[str]) -> dict:
    """The payment's events published from the outbox to the stream, by type (waits for `wanted`)."""
    from kit.cache import make_redis
    from kit.outbox import stream_name

    redis = make_redis(infra.redis_url)
    try:
        seen: dict[str, list] = {}
        for _ in range(200):
            seen = {}
            for _, fields in await redis.xrange(stream_name(redis_namespace, "payments")):
                envelope = envelope_pb2.EventEnvelope.FromString(fields[b"envelope"])
                if envelope.aggregate_id == payment_id:
                    seen.setdefault(envelope.event_type, []).append(envelope)
            if wanted <= set(seen):
                break
            await asyncio.sleep(0.05)
        return seen
    finally:
        await redis.aclose()


def _refund_request(payment_id: str, amount: int | None = None) -> pb.RefundPaymentRequest:
    request = pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id, reason="booking_cancelled")
    if amount is not None:
        request.amount.CopyFrom(money(amount))
    return request


# ---- refunds left PENDING ------------------------------------------------------------------------


async def test_a_refund_whose_answer_was_lost_stays_pending_until_reconciliation_records_it(
    payments, payments_server, clock, infra, redis_namespace
):
    payment = await _captured(payments, "tok_success+refund_timeout")
    request = _refund_request(payment.id, 3_000)
    refund_id = (await _unavailable(payments.RefundPayment(request)))["refund_id"]
    # The processor refunded; we do not know it yet: the refund is PENDING, its amount set aside.
    pending = await payments.RefundPayment(request)
    assert pending.refund.id == refund_id and pending.refund.status == pb.Refund.PENDING
    assert pending.payment.status == S.CAPTURED and pending.payment.refunded_amount.amount_minor == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(_refund_request(payment.id, 7_001))
    assert reason_of(caught.value) == "AMOUNT_EXCEEDS_REFUNDABLE"
    assert [kind for kind, _, _ in await _ledger(payments, payment.id)] == [K.AUTHORIZATION, K.CAPTURE]

    counts = await _reconcile(payments, clock)
    assert counts.refunds_succeeded_count >= 1
    settled = await payments.RefundPayment(request)  # the retry now answers the settled refund
    assert settled.refund.status == pb.Refund.SUCCEEDED and settled.refund.provider_reference.startswith("re_")
    assert settled.payment.status == S.PARTIALLY_REFUNDED and settled.payment.refunded_amount.amount_minor == 3_000
    ledger = await _ledger(payments, payment.id)
    assert ledger[-1] == (K.REFUND, 3_000, refund_id)
    charge = await payments_server.deps.processor.retrieve(idempotency_key=payment.id)
    assert charge.refunded_minor == 3_000

    # Another run changes nothing: the refund is settled once.
    await _reconcile(payments, clock)
    assert await _ledger(payments, payment.id) == ledger
    assert (await _get(payments, payment.id)).refunded_amount.amount_minor == 3_000
    # The rest is still refundable (and its answer lost too), and the events went through the outbox.
    await _unavailable(payments.RefundPayment(_refund_request(payment.id)))
    await _reconcile(payments, clock)
    final = await _get(payments, payment.id)
    assert final.status == S.REFUNDED and final.refunded_amount.amount_minor == 10_000
    assert (await payments_server.deps.processor.retrieve(idempotency_key=payment.id)).refunded_minor == 10_000
    seen = await _events(infra, redis_namespace, payment.id, {"payment.refunded"})
    refunded = [events_pb2.PaymentRefunded() for _ in seen.get("payment.refunded", [])]
    for event, envelope in zip(refunded, seen.get("payment.refunded", []), strict=True):
        envelope.payload.Unpack(event)
    assert {(e.refund_id, e.amount.amount_minor) for e in refunded} >= {(refund_id, 3_000)}


async def test_a_refund_lost_on_the_way_is_sent_again_once_by_reconciliation(payments, payments_server, clock):
    payment = await _captured(payments, "tok_success+refund_lost", amount=5_000)
    request = _refund_request(payment.id)
    refund_id = (await _unavailable(payments.RefundPayment(request)))["refund_id"]
    processor = payments_server.deps.processor
    assert await processor.retrieve_refund(reference=payment.provider_reference, idempotency_key=refund_id) is None
    assert (await processor.retrieve(idempotency_key=payment.id)).refunded_minor == 0

    counts = await _reconcile(payments, clock)
    assert counts.refunds_succeeded_count >= 1
    record = await processor.retrieve_refund(reference=payment.provider_reference, idempotency_key=refund_id)
    assert record is not None and record.status == "succeeded"
    settled = await payments.RefundPayment(request)
    assert settled.refund.status == pb.Refund.SUCCEEDED and settled.payment.status == S.REFUNDED
    await _reconcile(payments, clock)
    assert (await processor.retrieve(idempotency_key=payment.id)).refunded_minor == 5_000
    assert [(k, a) for k, a, _ in await _ledger(payments, payment.id)] == [
        (K.AUTHORIZATION, 5_000),
        (K.CAPTURE, 5_000),
        (K.REFUND, 5_000),
    ]


async def test_a_refund_the_processor_refuses_fails_frees_its_amount_and_says_so(payments, infra, redis_namespace):
    payment = await _captured(payments, "tok_success+refund_declined", amount=5_000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(_refund_request(payment.id))
    assert reason_of(caught.value) == "PAYMENT_DECLINED"
    after = await _get(payments, payment.id)
    assert after.status == S.CAPTURED and after.refunded_amount.amount_minor == 0
    seen = await _events(infra, redis_namespace, payment.id, {"payment.refund_failed"})
    failed = events_pb2.PaymentRefundFailed()
    assert seen["payment.refund_failed"][0].payload.Unpack(failed)
    assert (failed.failure_reason, failed.amount.amount_minor) == ("refund_declined", 5_000)


async def test_a_pending_refund_the_processor_then_refuses_is_failed_by_reconciliation_with_its_event(
    payments, clock, infra, redis_namespace
):
    """Its first request lost (PENDING), sent again by the reconciler, refused: FAILED, the amount set
    aside for it free again, and an event, so that the client and an agent hear of it."""
    payment = await _captured(payments, "tok_success+refund_lost+refund_declined", amount=5_000)
    refund_id = (await _unavailable(payments.RefundPayment(_refund_request(payment.id))))["refund_id"]
    counts = await _reconcile(payments, clock)
    assert counts.refunds_failed_count >= 1
    seen = await _events(infra, redis_namespace, payment.id, {"payment.refund_failed"})
    failed = events_pb2.PaymentRefundFailed()
    assert seen["payment.refund_failed"][0].payload.Unpack(failed)
    assert (failed.refund_id, failed.failure_reason) == (refund_id, "refund_declined")
    # Nothing refunded, and the whole capture can be refunded again.
    assert (await _get(payments, payment.id)).refunded_amount.amount_minor == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(_refund_request(payment.id, 5_000))
    # Accepted and sent (its first request lost too, by the token), not refused as exceeding what
    # is refundable: the failed refund's amount is free again.
    assert reason_of(caught.value) == "PROVIDER_UNAVAILABLE"


async def test_a_late_answer_after_reconciliation_does_not_refund_twice(payments, payments_server, clock):
    from payments.service_layer.handlers import _finish_refund

    payment = await _captured(payments, "tok_success+refund_timeout", amount=4_000)
    request = _refund_request(payment.id, 1_000)
    refund_id = (await _unavailable(payments.RefundPayment(request)))["refund_id"]
    await _reconcile(payments, clock)
    deps = payments_server.deps
    async with deps.uow() as uow:
        refund = await uow.payments.get_refund(refund_id)
    from dataclasses import replace

    from payments.domain.model import RefundStatus

    # The provider's answer to the original call arriving only now (as if it had been that slow).
    late = replace(refund, status=RefundStatus.PENDING, provider_reference="")
    answered, answered_payment = await _finish_refund(
        deps, str(uuid.uuid4()), payment.id, late, ("succeeded", refund.provider_reference)
    )
    assert answered.status is RefundStatus.SUCCEEDED and answered_payment.refunded_amount == 1_000
    now = await _get(payments, payment.id)
    assert now.refunded_amount.amount_minor == 1_000 and now.status == S.PARTIALLY_REFUNDED
    assert [k for k, _, _ in await _ledger(payments, payment.id)].count(K.REFUND) == 1


# ---- voids of authorizations whose outcome is unknown --------------------------------------------


async def test_a_void_of_an_unknown_authorization_is_recorded_and_made_once_the_charge_is_known(
    payments, payments_server, clock, infra, redis_namespace
):
    payment_id = await _unknown(payments, "tok_timeout")  # the processor authorized; the answer was lost
    void = pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id, reason="saga_recovery")
    queued = await payments.VoidPayment(void)
    assert queued.status == S.UNKNOWN
    assert await payments.VoidPayment(void) == queued  # an idempotent retry: the same answer
    other = await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id))
    assert other.status == S.UNKNOWN
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id))
    assert reason_of(caught.value) == "PAYMENT_OUTCOME_UNKNOWN"

    counts = await _reconcile(payments, clock)
    assert counts.succeeded_count >= 1
    voided = await _get(payments, payment_id)
    assert voided.status == S.VOIDED and voided.authorized_amount.amount_minor == 0
    assert [(k, a) for k, a, _ in await _ledger(payments, payment_id)] == [
        (K.AUTHORIZATION, 10_000),
        (K.VOID, 10_000),
    ]
    assert (await payments_server.deps.processor.retrieve(idempotency_key=payment_id)).status == "voided"
    await _reconcile(payments, clock)
    assert await _get(payments, payment_id) == voided
    seen = await _events(infra, redis_namespace, payment_id, {"payment.authorized", "payment.voided"})
    assert len(seen.get("payment.voided", [])) == 1
    event = events_pb2.PaymentVoided()
    seen["payment.voided"][0].payload.Unpack(event)
    assert event.reason == "saga_recovery" and event.amount.amount_minor == 10_000


async def test_a_void_of_an_authorization_the_processor_never_received_ends_failed(payments, payments_server, clock):
    payment_id = await _unknown(payments, "tok_lost")
    queued = await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id))
    assert queued.status == S.UNKNOWN
    await _reconcile(payments, clock)
    payment = await _get(payments, payment_id)
    assert payment.status == S.FAILED and payment.failure_reason == "provider_no_record"
    assert await _ledger(payments, payment_id) == []
    assert await payments_server.deps.processor.retrieve(idempotency_key=payment_id) is None


@pytest.mark.parametrize("behaviour", ["void_timeout", "void_lost"])
async def test_a_requested_void_whose_call_goes_unanswered_is_settled_on_a_later_run(payments, clock, behaviour):
    payment_id = await _unknown(payments, f"tok_timeout+{behaviour}")
    await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id))
    first = await _reconcile(payments, clock)  # the authorization is settled, the void goes unanswered
    assert first.still_unknown_count >= 1
    assert (await _get(payments, payment_id)).status == S.UNKNOWN
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id))
    assert reason_of(caught.value) == "PAYMENT_OUTCOME_UNKNOWN"
    await _reconcile(payments, clock)  # void_timeout: the record says voided; void_lost: sent again
    payment = await _get(payments, payment_id)
    assert payment.status == S.VOIDED and payment.authorized_amount.amount_minor == 0
    assert [k for k, _, _ in await _ledger(payments, payment_id)] == [K.AUTHORIZATION, K.VOID]


async def test_a_void_lost_on_the_way_is_not_forgotten_when_reconciliation_finds_the_charge_authorized(payments, clock):
    payment = await payments.AuthorizePayment(authorize_request(token="tok_success+void_lost"))
    void = pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, reason="hold_failed")
    await _unavailable(payments.VoidPayment(void))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.VoidPayment(void)
    assert reason_of(caught.value) == "PAYMENT_OUTCOME_UNKNOWN"
    await _reconcile(payments, clock)  # the processor never saw the void: it is sent again
    assert (await _get(payments, payment.id)).status == S.VOIDED
    assert (await payments.VoidPayment(void)).status == S.VOIDED
    assert [k for k, _, _ in await _ledger(payments, payment.id)] == [K.AUTHORIZATION, K.VOID]


async def test_a_void_during_the_authorization_call_is_made_after_it_and_blocks_the_capture(settings_for, clock):
    from payments.bootstrap import start

    # The processor takes 5 s to authorize: the test's void must arrive meanwhile, on a loaded machine too.
    slow = settings(settings_for, sandbox_slow_delay_s=5.0, provider_timeout_s=PATIENT_PROVIDER_TIMEOUT_S)
    running = await start(slow, clock=clock)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            client = Client(channel)
            request = authorize_request(token="tok_slow")
            authorizing = asyncio.ensure_future(client.AuthorizePayment(request))
            listed = pb.ListPaymentsRequest(booking_id=request.booking_id)
            for _ in range(500):
                found = (await client.ListPayments(listed)).payments
                if found:
                    break
                await asyncio.sleep(0.01)
            assert found and found[0].status == S.REQUIRES_AUTHORIZATION
            queued = await client.VoidPayment(
                pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=found[0].id)
            )
            assert queued.status == S.REQUIRES_AUTHORIZATION
            authorized = await authorizing
            assert authorized.status == S.AUTHORIZED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.CapturePayment(
                    pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=authorized.id)
                )
            assert reason_of(caught.value) == "ILLEGAL_PAYMENT_TRANSITION"
            await _reconcile(client, clock)
            assert (await _get(client, authorized.id)).status == S.VOIDED
    finally:
        await running.stop(0)


async def test_the_reconciliation_paths_stay_within_the_lock_budget(payments, clock, lock_readings):
    refunded = await _captured(payments, "tok_success+refund_lost")
    await _unavailable(payments.RefundPayment(_refund_request(refunded.id, 100)))
    unknown = await _unknown(payments, "tok_timeout+void_timeout")
    await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=unknown))
    await _reconcile(payments, clock)
    await _reconcile(payments, clock)
    assert (await _get(payments, unknown)).status == S.VOIDED
    readings = [r for r in lock_readings() if r.service == "payments" and not r.operation.startswith("outbox")]
    assert {"RefundPayment", "VoidPayment", "ReconcilePayments"} <= {r.operation for r in readings}
    for reading in readings:
        if reading.wrote:
            assert reading.relation_locks <= 14 and reading.advisory_locks <= 1, reading
        else:
            assert reading.total_locks <= 10, reading
