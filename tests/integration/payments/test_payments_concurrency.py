"""A storm of concurrent captures and refunds on one payment: at most one capture, refunds never
above the capture, and the balances equal the ledger's sums."""

import asyncio
import random
import uuid

import grpc
import pytest
from payments_helpers import authorize_request, money

from reserva.payments.v1 import payments_pb2 as pb

K = pb.LedgerEntry.Kind


@pytest.fixture(scope="module")
def payments(patient_payments):
    """70 calls at once on a pool of a few connections: the long timeouts let them wait their turn."""
    return patient_payments


async def _ledger_sums(payments, payment_id):
    sums = {kind: 0 for kind in K.values()}
    token = ""
    while True:
        page = await payments.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(payment_id=payment_id, page_size=200, page_token=token)
        )
        for entry in page.entries:
            sums[entry.kind] += entry.amount.amount_minor
        token = page.next_page_token
        if not token:
            return sums


async def test_a_storm_of_captures_and_refunds_keeps_refunded_within_captured_within_authorized(payments):
    payment = await payments.AuthorizePayment(authorize_request(amount=100_000))
    rng = random.Random(7)

    def capture():
        amount = rng.randint(50_000, 100_000)
        return payments.CapturePayment(
            pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(amount))
        )

    def refund():
        return payments.RefundPayment(
            pb.RefundPaymentRequest(
                request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(rng.randint(1_000, 9_000))
            )
        )

    calls = [capture() for _ in range(10)] + [refund() for _ in range(60)]
    rng.shuffle(calls)
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            assert result.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED), result
        else:
            assert not isinstance(result, BaseException), result
    # Refunds that lost the race against the capture (or against each other) are retried until nothing remains.
    for _ in range(30):
        try:
            await payments.RefundPayment(
                pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(5_000))
            )
        except grpc.aio.AioRpcError:
            break
    final = await payments.GetPayment(pb.GetPaymentRequest(id=payment.id))
    captured, refunded = final.captured_amount.amount_minor, final.refunded_amount.amount_minor
    assert 0 < captured <= 100_000 and refunded <= captured
    captures = [r for r in results if isinstance(r, pb.Payment)]
    assert len(captures) == 1 and captures[0].captured_amount.amount_minor == captured
    sums = await _ledger_sums(payments, payment.id)
    assert sums[K.AUTHORIZATION] == 100_000
    assert sums[K.CAPTURE] == captured and sums[K.REFUND] == refunded
    assert sums[K.RELEASE] == 100_000 - captured
    refunds = [r for r in results if isinstance(r, pb.RefundPaymentResponse)]
    assert sum(r.refund.amount.amount_minor for r in refunds) <= refunded


async def test_concurrent_full_refunds_refund_once(payments):
    payment = await payments.AuthorizePayment(authorize_request(amount=5_000))
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    results = await asyncio.gather(
        *(
            payments.RefundPayment(pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, pb.RefundPaymentResponse)]
    assert len(ok) == 1 and ok[0].refund.amount.amount_minor == 5_000
    final = await payments.GetPayment(pb.GetPaymentRequest(id=payment.id))
    assert final.status == pb.Payment.REFUNDED and final.refunded_amount.amount_minor == 5_000
