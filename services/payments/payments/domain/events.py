"""Domain events of a payment (past tense). Adapters turn them into the protos of events.proto."""

from __future__ import annotations

from dataclasses import dataclass

from payments.domain.money import Money


@dataclass(frozen=True)
class PaymentAuthorized:
    payment_id: str
    booking_id: str
    user_id: str
    kind: str
    amount: Money


@dataclass(frozen=True)
class PaymentCaptured:
    payment_id: str
    booking_id: str
    user_id: str
    kind: str
    amount: Money
    released_amount: Money


@dataclass(frozen=True)
class PaymentFailed:
    payment_id: str
    booking_id: str
    user_id: str
    amount: Money
    failure_reason: str


@dataclass(frozen=True)
class PaymentRefunded:
    payment_id: str
    booking_id: str
    user_id: str
    refund_id: str
    amount: Money
    refunded_total: Money
    fully_refunded: bool
    reason: str


@dataclass(frozen=True)
class PaymentRefundFailed:
    payment_id: str
    booking_id: str
    user_id: str
    refund_id: str
    amount: Money
    failure_reason: str


@dataclass(frozen=True)
class PaymentVoided:
    payment_id: str
    booking_id: str
    user_id: str
    amount: Money
    reason: str


DomainEvent = (
    PaymentAuthorized | PaymentCaptured | PaymentFailed | PaymentRefunded | PaymentRefundFailed | PaymentVoided
)
