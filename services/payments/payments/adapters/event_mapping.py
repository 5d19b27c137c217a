"""Domain events -> the protos of reserva/payments/v1/events.proto, wrapped for the outbox."""

from __future__ import annotations

from kit.outbox import OutboxMessage
from payments.domain import events
from payments.domain.money import Money
from reserva.payments.v1 import events_pb2, payments_pb2
from reserva.type.v1 import types_pb2

KIND_TO_PROTO = {
    "full": payments_pb2.PAYMENT_KIND_FULL,
    "deposit": payments_pb2.PAYMENT_KIND_DEPOSIT,
    "balance": payments_pb2.PAYMENT_KIND_BALANCE,
}


def money_proto(money: Money) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=money.amount_minor, currency_code=money.currency)


def to_outbox(event: events.DomainEvent) -> OutboxMessage:
    match event:
        case events.PaymentAuthorized():
            name, payload = "payment.authorized", events_pb2.PaymentAuthorized(
                payment_id=event.payment_id, booking_id=event.booking_id, user_id=event.user_id,
                kind=KIND_TO_PROTO[event.kind], amount=money_proto(event.amount),
            )  # fmt: skip
        case events.PaymentCaptured():
            name, payload = "payment.captured", events_pb2.PaymentCaptured(
                payment_id=event.payment_id, booking_id=event.booking_id, user_id=event.user_id,
                kind=KIND_TO_PROTO[event.kind], amount=money_proto(event.amount),
                released_amount=money_proto(event.released_amount),
            )  # fmt: skip
        case events.PaymentFailed():
            name, payload = "payment.failed", events_pb2.PaymentFailed(
                payment_id=event.payment_id, booking_id=event.booking_id, user_id=event.user_id,
                amount=money_proto(event.amount), failure_reason=event.failure_reason,
            )  # fmt: skip
        case events.PaymentRefunded():
            name, payload = "payment.refunded", events_pb2.PaymentRefunded(
                payment_id=event.payment_id, booking_id=event.booking_id, user_id=event.user_id,
                refund_id=event.refund_id, amount=money_proto(event.amount),
                refunded_total=money_proto(event.refunded_total), fully_refunded=event.fully_refunded,
                reason=event.reason,
            )  # fmt: skip
        case events.PaymentRefundFailed():
            name, payload = "payment.refund_failed", events_pb2.PaymentRefundFailed(
                payment_id=event.payment_id, booking_id=event.booking_id, user_id=event.user_id,
                refund_id=event.refund_id, amount=money_proto(event.amount), failure_reason=event.failure_reason,
            )  # fmt: skip
        case events.PaymentVoided():
            name, payload = "payment.voided", events_pb2.PaymentVoided(
                payment_id=event.payment_id, booking_id=event.booking_id, user_id=event.user_id,
                amount=money_proto(event.amount), reason=event.reason,
            )  # fmt: skip
        case _:
            raise TypeError(f"unknown event {event!r}")
    return OutboxMessage(name, event.payment_id, payload)
