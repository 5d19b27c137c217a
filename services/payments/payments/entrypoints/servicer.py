"""The gRPC servicer: protos in, commands to the handlers, protos out. Thin by design."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from kit import page_tokens, prototime
from kit.context import current_caller
from kit.errors import InvalidArgument
from payments.entrypoints import proto_mapping as m
from payments.service_layer import handlers, reports, settlement
from payments.service_layer.handlers import Deps, require_uuid
from payments.service_layer.idempotency import require_request_id
from reserva.payments.v1 import payments_pb2 as pb
from reserva.payments.v1 import payments_pb2_grpc

MAX_WEBHOOK_BODY = 1024 * 1024
# Older is past any processor's records (and the largest Duration, 10,000 years, put the cutoff
# before year 1).
MAX_RECONCILE_AGE = timedelta(days=3650)
log = logging.getLogger("reserva.payments")
_running: set[asyncio.Task] = set()


async def to_completion(operation):
    """Money movements run to their end even when the caller goes away (a killed booking service
    cancels its calls): cut between the processor's answer and its record, an operation would stay
    'in progress' and block its own retries until reconciliation. Shielded from the RPC's
    cancellation, it finishes and records its outcome; a retry with the same request id gets it."""
    task = asyncio.ensure_future(operation)
    _running.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The caller may have gone; the error is the caller's answer when it is still there.
        log.debug("payment operation ended in an error", extra={"error": repr(task.exception())[:300]})


class PaymentServicer(payments_pb2_grpc.PaymentServiceServicer):
    def __init__(self, deps: Deps):
        self.deps = deps

    async def AuthorizePayment(self, request: pb.AuthorizePaymentRequest, context) -> pb.Payment:
        token = request.payment_method_token
        if not token or len(token) > 255:
            raise InvalidArgument("payment_method_token is required (at most 255 characters)")
        command = handlers.AuthorizePayment(
            request_id=require_request_id(request.request_id),
            booking_id=require_uuid(request.booking_id, "booking_id"),
            user_id=require_uuid(request.user_id, "user_id"),
            amount=m.money_from_proto(request.amount, request, "amount", required=True),
            payment_method_token=token,
            kind=m.kind_from_proto(request.kind),
        )
        return m.payment_to_proto(await to_completion(handlers.authorize_payment(self.deps, command)))

    async def CapturePayment(self, request: pb.CapturePaymentRequest, context) -> pb.Payment:
        command = handlers.CapturePayment(
            request_id=require_request_id(request.request_id),
            payment_id=require_uuid(request.payment_id, "payment_id"),
            amount=m.money_from_proto(request.amount, request, "amount", required=False),
        )
        return m.payment_to_proto(await to_completion(handlers.capture_payment(self.deps, command)))

    async def VoidPayment(self, request: pb.VoidPaymentRequest, context) -> pb.Payment:
        command = handlers.VoidPayment(
            request_id=require_request_id(request.request_id),
            payment_id=require_uuid(request.payment_id, "payment_id"),
            reason=request.reason,
        )
        return m.payment_to_proto(await to_completion(handlers.void_payment(self.deps, command)))

    async def RefundPayment(self, request: pb.RefundPaymentRequest, context) -> pb.RefundPaymentResponse:
        handlers.require_refunder(current_caller.get())
        command = handlers.RefundPayment(
            request_id=require_request_id(request.request_id),
            payment_id=require_uuid(request.payment_id, "payment_id"),
            amount=m.money_from_proto(request.amount, request, "amount", required=False),
            reason=request.reason,
        )
        refund, payment = await to_completion(handlers.refund_payment(self.deps, command))
        return pb.RefundPaymentResponse(refund=m.refund_to_proto(refund), payment=m.payment_to_proto(payment))

    async def GetPayment(self, request: pb.GetPaymentRequest, context) -> pb.Payment:
        payment_id = require_uuid(request.id, "id")
        return m.payment_to_proto(await handlers.get_payment(self.deps, payment_id, current_caller.get()))

    async def ListPayments(self, request: pb.ListPaymentsRequest, context) -> pb.ListPaymentsResponse:
        if bool(request.booking_id) == bool(request.user_id):
            raise InvalidArgument("set exactly one of booking_id and user_id")
        booking_id = require_uuid(request.booking_id, "booking_id") if request.booking_id else None
        user_id = require_uuid(request.user_id, "user_id") if request.user_id else None
        size = m.page_size(request.page_size)
        scope = f"b:{booking_id}" if booking_id else f"u:{user_id}"
        after = m.decode_token(request.page_token, scope, page_tokens.aware_time, page_tokens.uuid_text)
        payments = await handlers.list_payments(
            self.deps, booking_id=booking_id, user_id=user_id, after=after, limit=size + 1, caller=current_caller.get()
        )
        token = ""
        if len(payments) > size:
            payments = payments[:size]
            last = payments[-1]
            token = m.encode_token(scope, [last.create_time.isoformat(), last.id])
        return pb.ListPaymentsResponse(payments=[m.payment_to_proto(p) for p in payments], next_page_token=token)

    async def BatchGetPaymentsByBooking(self, request, context) -> pb.BatchGetPaymentsByBookingResponse:
        if not 1 <= len(request.booking_ids) <= 100:
            raise InvalidArgument(f"booking_ids must hold 1 to 100 ids, got {len(request.booking_ids)}")
        ids = list(dict.fromkeys(require_uuid(b, "booking_ids") for b in request.booking_ids))
        grouped = await handlers.batch_get_by_booking(self.deps, ids)
        return pb.BatchGetPaymentsByBookingResponse(
            results=[
                pb.BookingPayments(booking_id=b, payments=[m.payment_to_proto(p) for p in grouped[b]]) for b in ids
            ]
        )

    async def ListLedgerEntries(self, request, context) -> pb.ListLedgerEntriesResponse:
        payment_id = require_uuid(request.payment_id, "payment_id")
        size = m.page_size(request.page_size)
        (after_seq,) = m.decode_token(request.page_token, f"l:{payment_id}", page_tokens.non_negative_int) or (0,)
        entries = await handlers.list_ledger_entries(self.deps, payment_id, after_seq, size + 1, current_caller.get())
        token = ""
        if len(entries) > size:
            entries = entries[:size]
            token = m.encode_token(f"l:{payment_id}", [entries[-1].seq])
        return pb.ListLedgerEntriesResponse(
            entries=[m.ledger_entry_to_proto(e) for e in entries], next_page_token=token
        )

    async def HandleProviderWebhook(self, request, context) -> pb.HandleProviderWebhookResponse:
        if not request.body or len(request.body) > MAX_WEBHOOK_BODY:
            raise InvalidArgument("body is required, at most 1 MiB")
        if not request.signature:
            raise InvalidArgument("signature is required", reason="INVALID_WEBHOOK_SIGNATURE")
        outcome = await settlement.handle_provider_webhook(self.deps, request.body, request.signature)
        return pb.HandleProviderWebhookResponse(
            provider_event_id=outcome.provider_event_id, duplicate=outcome.duplicate, payment_id=outcome.payment_id
        )

    async def ReconcilePayments(self, request, context) -> pb.ReconcilePaymentsResponse:
        request_id = require_request_id(request.request_id)
        older_than = request.older_than.ToTimedelta() if request.HasField("older_than") else timedelta(minutes=5)
        if not timedelta(minutes=1) <= older_than <= MAX_RECONCILE_AGE:
            raise InvalidArgument("older_than must be from 1 minute to 3650 days")
        max_payments = request.max_payments or 100
        if not 1 <= max_payments <= 1000:
            raise InvalidArgument("max_payments must be 1 to 1000")
        counts = await settlement.reconcile_payments(self.deps, request_id, older_than, max_payments)
        return pb.ReconcilePaymentsResponse(
            examined_count=counts.examined, succeeded_count=counts.succeeded, failed_count=counts.failed,
            still_unknown_count=counts.still_unknown, more_remaining=counts.more_remaining,
            refunds_succeeded_count=counts.refunds_succeeded, refunds_failed_count=counts.refunds_failed,
            refunds_pending_count=counts.refunds_pending,
        )  # fmt: skip

    async def GetRevenueStats(self, request, context) -> pb.RevenueStats:
        if not (request.HasField("time_range") and request.time_range.HasField("start_time")):
            raise InvalidArgument("time_range with start_time and end_time is required", reason="INVALID_TIME_RANGE")
        try:
            start = prototime.to_datetime(request.time_range.start_time)
            end = prototime.to_datetime(request.time_range.end_time)
        except (ValueError, OverflowError):
            raise InvalidArgument("time_range is out of the supported range", reason="INVALID_TIME_RANGE") from None
        stats = await reports.get_revenue_stats(self.deps, start, end, request.time_zone, list(request.booking_ids))
        return pb.RevenueStats(
            totals=[m.currency_revenue_proto(t) for t in stats.totals],
            daily=[
                pb.DailyRevenue(
                    date=m.types_pb2.Date(year=d.year, month=d.month, day=d.day), revenue=m.currency_revenue_proto(r)
                )
                for d, r in stats.daily
            ],
        )
