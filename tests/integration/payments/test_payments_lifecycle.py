"""Every status transition of a payment through the real gRPC server and PostgreSQL."""

import uuid

import grpc
import pytest
from payments_helpers import authorize_request, money, reason_of

from reserva.payments.v1 import payments_pb2 as pb

S = pb.Payment.Status
K = pb.LedgerEntry.Kind


async def _authorized(payments, amount=10_000, currency="EUR"):
    payment = await payments.AuthorizePayment(authorize_request(amount, currency))
    assert payment.status == S.AUTHORIZED
    return payment


async def _ledger(payments, payment_id):
    reply = await payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment_id))
    return [(e.kind, e.amount.amount_minor) for e in reply.entries]


async def test_authorizing_reserves_the_amount_and_records_it_in_the_ledger(payments):
    payment = await payments.AuthorizePayment(authorize_request(12_345, "USD"))
    assert payment.status == S.AUTHORIZED
    assert payment.authorized_amount.amount_minor == 12_345 and payment.authorized_amount.currency_code == "USD"
    assert payment.captured_amount.amount_minor == 0 and payment.provider_reference.startswith("ch_")
    assert payment.HasField("authorization_expire_time")
    assert await _ledger(payments, payment.id) == [(K.AUTHORIZATION, 12_345)]


async def test_a_full_capture_charges_everything_authorized(payments):
    payment = await _authorized(payments)
    captured = await payments.CapturePayment(
        pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id)
    )
    assert captured.status == S.CAPTURED
    assert captured.captured_amount.amount_minor == 10_000 and captured.authorized_amount.amount_minor == 0
    assert not captured.HasField("authorization_expire_time")
    assert await _ledger(payments, payment.id) == [(K.AUTHORIZATION, 10_000), (K.CAPTURE, 10_000)]


async def test_a_partial_capture_releases_the_rest_of_the_authorization(payments):
    payment = await _authorized(payments)
    captured = await payments.CapturePayment(
        pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(6_000))
    )
    assert captured.status == S.CAPTURED and captured.captured_amount.amount_minor == 6_000
    assert await _ledger(payments, payment.id) == [
        (K.AUTHORIZATION, 10_000),
        (K.CAPTURE, 6_000),
        (K.RELEASE, 4_000),
    ]


async def test_capturing_more_than_authorized_is_refused(payments):
    payment = await _authorized(payments)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.CapturePayment(
            pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(10_001))
        )
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "AMOUNT_EXCEEDS_CAPTURABLE"


async def test_a_captured_payment_cannot_be_captured_again_with_a_new_request_id(payments):
    payment = await _authorized(payments)
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    assert reason_of(caught.value) == "ILLEGAL_PAYMENT_TRANSITION"


async def test_voiding_releases_the_authorization_and_voiding_again_changes_nothing(payments):
    payment = await _authorized(payments)
    voided = await payments.VoidPayment(
        pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, reason="hold_failed")
    )
    assert voided.status == S.VOIDED and voided.authorized_amount.amount_minor == 0
    again = await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    assert again.status == S.VOIDED and again.update_time == voided.update_time
    assert await _ledger(payments, payment.id) == [(K.AUTHORIZATION, 10_000), (K.VOID, 10_000)]


async def test_a_voided_payment_cannot_be_captured_and_a_captured_one_cannot_be_voided(payments):
    voided = await _authorized(payments)
    await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=voided.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=voided.id))
    assert reason_of(caught.value) == "ILLEGAL_PAYMENT_TRANSITION"
    captured = await _authorized(payments)
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=captured.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.VoidPayment(pb.VoidPaymentRequest(request_id=str(uuid.uuid4()), payment_id=captured.id))
    assert reason_of(caught.value) == "ILLEGAL_PAYMENT_TRANSITION"


async def test_several_partial_refunds_end_fully_refunded_and_never_exceed_the_capture(payments):
    payment = await _authorized(payments)
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    first = await payments.RefundPayment(
        pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(3_000), reason="x")
    )
    assert first.payment.status == S.PARTIALLY_REFUNDED and first.refund.status == pb.Refund.SUCCEEDED
    assert first.refund.amount.amount_minor == 3_000 and first.refund.provider_reference.startswith("re_")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(
            pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(7_001))
        )
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "AMOUNT_EXCEEDS_REFUNDABLE"
    rest = await payments.RefundPayment(pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    assert rest.refund.amount.amount_minor == 7_000
    assert rest.payment.status == S.REFUNDED and rest.payment.refunded_amount.amount_minor == 10_000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    assert reason_of(caught.value) == "ILLEGAL_PAYMENT_TRANSITION"
    ledger = await _ledger(payments, payment.id)
    assert ledger[-2:] == [(K.REFUND, 3_000), (K.REFUND, 7_000)]


async def test_an_uncaptured_payment_cannot_be_refunded(payments):
    payment = await _authorized(payments)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.RefundPayment(pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    assert reason_of(caught.value) == "ILLEGAL_PAYMENT_TRANSITION"


async def test_amounts_in_another_currency_are_invalid(payments):
    payment = await _authorized(payments, currency="JPY", amount=5_000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.CapturePayment(
            pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(100, "USD"))
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "INVALID_CURRENCY"


async def test_get_list_and_batch_return_the_payments_of_a_booking(payments):
    booking_id = str(uuid.uuid4())
    user_id = str(uuid.uuid4())
    made = [
        await payments.AuthorizePayment(authorize_request(1_000 + n, booking_id=booking_id, user_id=user_id))
        for n in range(5)
    ]
    got = await payments.GetPayment(pb.GetPaymentRequest(id=made[0].id))
    assert got == made[0]
    seen, token = [], ""
    while True:
        page = await payments.ListPayments(pb.ListPaymentsRequest(booking_id=booking_id, page_size=2, page_token=token))
        seen.extend(p.id for p in page.payments)
        token = page.next_page_token
        if not token:
            break
    assert seen == [p.id for p in reversed(made)]
    by_user = await payments.ListPayments(pb.ListPaymentsRequest(user_id=user_id, page_size=200))
    assert [p.id for p in by_user.payments] == seen
    other = str(uuid.uuid4())
    batch = await payments.BatchGetPaymentsByBooking(
        pb.BatchGetPaymentsByBookingRequest(booking_ids=[other, booking_id, other])
    )
    assert [r.booking_id for r in batch.results] == [other, booking_id]
    assert batch.results[0].payments == [] and len(batch.results[1].payments) == 5


async def test_an_unknown_payment_is_not_found(payments):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.GetPayment(pb.GetPaymentRequest(id=str(uuid.uuid4())))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND and reason_of(caught.value) == "PAYMENT_NOT_FOUND"
