"""Errors of the payments domain, each with the stable reason clients branch on."""

from __future__ import annotations

from kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PaymentDeclined, Unavailable

__all__ = [
    "AmountExceedsCapturable",
    "AmountExceedsRefundable",
    "CurrencyMismatch",
    "IllegalPaymentTransition",
    "InvalidAmount",
    "InvalidCurrency",
    "InvalidWebhookSignature",
    "OperationInProgress",
    "PaymentDeclined",
    "PaymentNotFound",
    "PaymentOutcomeUnknown",
    "ProviderUnavailable",
]


class InvalidAmount(InvalidArgument):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="INVALID_AMOUNT", **kwargs)


class InvalidCurrency(InvalidArgument):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="INVALID_CURRENCY", **kwargs)


class CurrencyMismatch(InvalidCurrency):
    """An amount in another currency than the payment's."""


class PaymentNotFound(NotFound):
    def __init__(self, payment_id: str) -> None:
        super().__init__(f"payment {payment_id} not found", reason="PAYMENT_NOT_FOUND")


class IllegalPaymentTransition(FailedPrecondition):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="ILLEGAL_PAYMENT_TRANSITION", **kwargs)


class AmountExceedsCapturable(FailedPrecondition):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="AMOUNT_EXCEEDS_CAPTURABLE", **kwargs)


class AmountExceedsRefundable(FailedPrecondition):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="AMOUNT_EXCEEDS_REFUNDABLE", **kwargs)


class PaymentOutcomeUnknown(FailedPrecondition):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="PAYMENT_OUTCOME_UNKNOWN", **kwargs)


class OperationInProgress(Conflict):
    """Another capture/void of the payment, or a request with the same request_id, is in flight."""


class ProviderUnavailable(Unavailable):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="PROVIDER_UNAVAILABLE", **kwargs)


class InvalidWebhookSignature(InvalidArgument):
    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, reason="INVALID_WEBHOOK_SIGNATURE", **kwargs)
