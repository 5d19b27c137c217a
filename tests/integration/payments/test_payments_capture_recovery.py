"""A capture whose recording transaction is terminated (pg_terminate_backend) after its idempotency
key and the payment's "capture in progress" were committed: the call fails, a retry is told to wait,
the reconciler settles the capture from the processor's record (sending it again, under the same
idempotency key, if the processor never received it), and the retry then answers the outcome. The
money moves once. On the real server, database and sandbox processor; the cut is a real one."""

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2
from payments_helpers import PATIENT_PROVIDER_TIMEOUT_S, authorize_request

from kit.provision import admin_dsn
from reserva.payments.v1 import payments_pb2 as pb

S = pb.Payment.Status
K = pb.LedgerEntry.Kind


# The service's processor call waits on a row lock the test holds: this module's server gives it
# room on a loaded machine (the shared server's 2 s timeouts left the test a narrow window).
@pytest.fixture(scope="module")
def payments_server(patient_payments_server):
    return patient_payments_server


@pytest.fixture(scope="module")
def payments(patient_payments):
    return patient_payments


@pytest.fixture
def dsn(infra, database) -> str:
    return admin_dsn(infra.admin_database_url, database)


async def _blocked_by(holder: asyncpg.Connection) -> int:
    """The pid of the service's session waiting for a lock `holder` holds. Asked of pg_locks, which
    is read afresh by every statement: `holder` is inside its transaction, and there pg_stat_activity
    keeps the list of sessions it read first, so a pool connection opened later never shows."""
    for _ in range(2000):
        pids = await holder.fetch(
            "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted AND $1 = ANY(pg_blocking_pids(pid))",
            holder.get_server_pid(),
        )
        if pids:
            return pids[0]["pid"]
        await asyncio.sleep(0.01)
    raise AssertionError("no session of the service waited for the lock")


async def _capture_cut_mid_record(payments, dsn: str, payment: pb.Payment) -> pb.CapturePaymentRequest:
    """CapturePayment with its recording transaction terminated. The processor's charge row is held
    (the capture's provider call waits there once the reservation is committed), then the payment row
    (the recording waits there), then the provider call goes on (it captures, or with the test token
    "capture_lost" the request never reaches the processor) and the recording session is terminated.
    Returns the request, for retries."""
    request = pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id)
    charge_row, payment_row = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        await charge_row.execute("BEGIN")
        await charge_row.execute(
            "SELECT 1 FROM payments.sandbox_charges WHERE reference = $1 FOR UPDATE", payment.provider_reference
        )
        capturing = asyncio.ensure_future(payments.CapturePayment(request))
        await _blocked_by(charge_row)
        await payment_row.execute("BEGIN")
        await payment_row.execute("SELECT 1 FROM payments.payments WHERE id = $1::uuid FOR UPDATE", payment.id)
        await charge_row.execute("COMMIT")
        recording = await _blocked_by(payment_row)
        assert await payment_row.fetchval("SELECT pg_terminate_backend($1)", recording)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await capturing
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, caught.value
    finally:
        await charge_row.close()
        await payment_row.close()
    return request


async def _reconcile(payments, clock) -> pb.ReconcilePaymentsResponse:
    clock.advance(timedelta(minutes=2))
    return await payments.ReconcilePayments(
        pb.ReconcilePaymentsRequest(
            request_id=str(uuid.uuid4()), older_than=duration_pb2.Duration(seconds=60), max_payments=1000
        )
    )


async def _reconciler_run(deps, clock):
    """One run of the reconciler worker with short timers (as PAYMENTS_RECONCILE_OLDER_THAN_S=1 sets
    them; the RPC takes at least a minute): past the cutoff and the provider's timeout (20 s here),
    long before an in-progress key counts as stale (2 minutes)."""
    from payments.service_layer.settlement import reconcile_unsettled

    clock.advance(timedelta(seconds=PATIENT_PROVIDER_TIMEOUT_S + 10))
    return await reconcile_unsettled(deps, timedelta(seconds=1), 1000)


async def _ledger(payments, payment_id):
    reply = await payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment_id))
    return [(e.kind, e.amount.amount_minor) for e in reply.entries]


async def _get(payments, payment_id) -> pb.Payment:
    return await payments.GetPayment(pb.GetPaymentRequest(id=payment_id))


async def _told_to_wait(call) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.ABORTED, caught.value


async def test_a_capture_cut_mid_record_is_settled_by_reconciliation_and_its_retry_answers_captured(
    payments, payments_server, clock, dsn, lock_readings
):
    payment = await payments.AuthorizePayment(authorize_request(8_000))
    request = await _capture_cut_mid_record(payments, dsn, payment)
    processor = payments_server.deps.processor
    charge = await processor.retrieve(idempotency_key=payment.id)
    assert (charge.status, charge.captured_minor) == ("captured", 8_000)  # the money moved...
    assert (await _get(payments, payment.id)).status == S.AUTHORIZED  # ...and our books do not know yet
    await _told_to_wait(payments.CapturePayment(request))  # in progress: never a second capture
    await _told_to_wait(payments.CapturePayment(pb.CapturePaymentRequest(request_id="other", payment_id=payment.id)))

    counts = await _reconcile(payments, clock)
    assert counts.succeeded_count >= 1
    captured = await payments.CapturePayment(request)
    assert captured.status == S.CAPTURED and captured.captured_amount.amount_minor == 8_000
    ledger = await _ledger(payments, payment.id)
    assert ledger == [(K.AUTHORIZATION, 8_000), (K.CAPTURE, 8_000)]

    # Settled once: another run, another retry change nothing.
    await _reconcile(payments, clock)
    assert (await payments.CapturePayment(request)).status == S.CAPTURED
    assert await _ledger(payments, payment.id) == ledger
    assert (await processor.retrieve(idempotency_key=payment.id)).captured_minor == 8_000
    readings = [r for r in lock_readings() if r.service == "payments" and not r.operation.startswith("outbox")]
    assert {"CapturePayment", "ReconcilePayments"} <= {r.operation for r in readings}
    for reading in readings:
        if reading.wrote:
            assert reading.relation_locks <= 16 and reading.advisory_locks <= 1, reading
        else:
            assert reading.total_locks <= 10, reading


async def test_a_capture_cut_mid_record_that_the_processor_never_received_is_sent_again_once(
    payments, payments_server, clock, dsn
):
    payment = await payments.AuthorizePayment(authorize_request(6_000, token="tok_success+capture_lost"))
    request = await _capture_cut_mid_record(payments, dsn, payment)
    processor = payments_server.deps.processor
    assert (await processor.retrieve(idempotency_key=payment.id)).status == "authorized"
    await _told_to_wait(payments.CapturePayment(request))

    # The retry takes the key over because the reconciler settled its capture (not because it aged).
    counts = await _reconciler_run(payments_server.deps, clock)
    assert counts.succeeded >= 1
    charge = await processor.retrieve(idempotency_key=payment.id)
    assert (charge.status, charge.captured_minor) == ("captured", 6_000)
    captured = await payments.CapturePayment(request)
    assert captured.status == S.CAPTURED and captured.captured_amount.amount_minor == 6_000
    assert await _ledger(payments, payment.id) == [(K.AUTHORIZATION, 6_000), (K.CAPTURE, 6_000)]


async def test_the_cut_call_s_late_answer_after_reconciliation_does_not_capture_twice(
    payments, payments_server, clock, dsn
):
    from payments.domain.money import Money
    from payments.service_layer.handlers import _finish_operation

    payment = await payments.AuthorizePayment(authorize_request(5_000, token="tok_success+capture_lost"))
    request = await _capture_cut_mid_record(payments, dsn, payment)
    deps = payments_server.deps
    await _reconciler_run(deps, clock)
    assert (await _get(payments, payment.id)).status == S.CAPTURED  # sent again and recorded
    # The original call's answer recorded only now, as if its recording had been that slow: the
    # processor's key makes the call a no-op, and the recording answers the settled payment.
    late_call = deps.processor.capture(
        reference=payment.provider_reference, amount=Money(5_000, "EUR"), idempotency_key=f"capture:{payment.id}"
    )
    answered = await _finish_operation(
        deps, request.request_id, "capture", payment.id, late_call, lambda p, now: p.capture_succeeded(now)
    )
    assert answered.captured_amount == 5_000
    assert await _ledger(payments, payment.id) == [(K.AUTHORIZATION, 5_000), (K.CAPTURE, 5_000)]
    assert (await payments.CapturePayment(request)).captured_amount.amount_minor == 5_000
    assert (await deps.processor.retrieve(idempotency_key=payment.id)).captured_minor == 5_000


async def test_a_recording_from_the_flow_s_own_stale_copy_reads_the_settled_payment_instead(
    payments, payments_server, clock, dsn
):
    """The recording step works on the copy of the payment its flow saved last, without reading it;
    the reconciler changed the payment meanwhile, so the save's version check refuses that copy and
    the step runs again on the row as it is: nothing recorded twice."""
    from payments.domain.money import Money
    from payments.service_layer.handlers import _finish_operation

    payment = await payments.AuthorizePayment(authorize_request(4_000, token="tok_success+capture_lost"))
    request = await _capture_cut_mid_record(payments, dsn, payment)
    deps = payments_server.deps
    async with deps.uow() as uow:
        as_the_flow_left_it = await uow.payments.get(payment.id)  # capture reserved, in flight
    await _reconciler_run(deps, clock)
    assert (await _get(payments, payment.id)).status == S.CAPTURED
    late_call = deps.processor.capture(
        reference=payment.provider_reference, amount=Money(4_000, "EUR"), idempotency_key=f"capture:{payment.id}"
    )
    answered = await _finish_operation(
        deps,
        request.request_id,
        "capture",
        payment.id,
        late_call,
        lambda p, now: p.capture_succeeded(now),
        known=as_the_flow_left_it,
    )
    assert answered.captured_amount == 4_000
    assert await _ledger(payments, payment.id) == [(K.AUTHORIZATION, 4_000), (K.CAPTURE, 4_000)]
    assert (await payments.CapturePayment(request)).captured_amount.amount_minor == 4_000
