"""The one domain error hierarchy. Pure Python: services' domain code raises these (or subclasses),
the gRPC interceptor and the gateway translate them through `kit.error_table`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ErrorKind(Enum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    UNAUTHENTICATED = "unauthenticated"
    FAILED_PRECONDITION = "failed_precondition"
    PAYMENT_REQUIRED = "payment_required"
    CONFLICT = "conflict"  # concurrent modification, lock timeout, deadlock after retries
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


@dataclass
class ReservaError(Exception):
    """Base of every error a caller may see. `reason` is a stable UPPER_SNAKE code clients branch on."""

    message: str
    reason: str = "INTERNAL"
    kind: ErrorKind = ErrorKind.INTERNAL
    metadata: dict[str, str] = field(default_factory=dict)
    # Structured extras (e.g. conflicting time ranges) that adapters may serialise into details.
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def _kind_error(kind: ErrorKind, default_reason: str):
    class _Error(ReservaError):
        def __init__(self, message: str, reason: str = default_reason, **kwargs: object) -> None:
            super().__init__(message=message, reason=reason, kind=kind, **kwargs)  # type: ignore[arg-type]

    return _Error


class InvalidArgument(_kind_error(ErrorKind.INVALID_ARGUMENT, "INVALID_ARGUMENT")):
    """Malformed input the caller controls."""


class NotFound(_kind_error(ErrorKind.NOT_FOUND, "NOT_FOUND")):
    """Unknown resource, or one the caller may not see."""


class AlreadyExists(_kind_error(ErrorKind.ALREADY_EXISTS, "ALREADY_EXISTS")):
    """A resource with that identity exists."""


class PermissionDenied(_kind_error(ErrorKind.PERMISSION_DENIED, "PERMISSION_DENIED")):
    """Authenticated, but not allowed."""


class Unauthenticated(_kind_error(ErrorKind.UNAUTHENTICATED, "UNAUTHENTICATED")):
    """No or invalid credentials."""


class FailedPrecondition(_kind_error(ErrorKind.FAILED_PRECONDITION, "FAILED_PRECONDITION")):
    """Slot taken, illegal transition, policy refusal."""


class PaymentDeclined(_kind_error(ErrorKind.PAYMENT_REQUIRED, "PAYMENT_DECLINED")):
    """The card processor refused."""


class Conflict(_kind_error(ErrorKind.CONFLICT, "CONCURRENT_MODIFICATION")):
    """Concurrent modification or a lock that could not be had in time: retry later."""


class IdempotencyKeyReused(_kind_error(ErrorKind.IDEMPOTENCY_KEY_REUSED, "IDEMPOTENCY_KEY_REUSED")):
    """The same request id was sent with other parameters."""


class RateLimited(_kind_error(ErrorKind.RATE_LIMITED, "RATE_LIMITED")):
    """Too many requests."""


class Unavailable(_kind_error(ErrorKind.UNAVAILABLE, "UNAVAILABLE")):
    """A peer or dependency is down; safe to retry later."""


class DeadlineExceeded(_kind_error(ErrorKind.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED")):
    """The call ran out of time."""


class LockBudgetExceeded(ReservaError):
    """A transaction took more locks than its budget (strict lock probe). Always a bug."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message, reason="LOCK_BUDGET_EXCEEDED", kind=ErrorKind.INTERNAL)
