"""One table from error kind to gRPC status and HTTP status, used by the service interceptor, the
gRPC clients (status -> error) and the gateway (status -> problem+json)."""

from __future__ import annotations

import grpc

from kit.errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    ErrorKind,
    FailedPrecondition,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    RateLimited,
    ReservaError,
    Unauthenticated,
    Unavailable,
)

# kind -> (gRPC status, HTTP status)
ERROR_TABLE: dict[ErrorKind, tuple[grpc.StatusCode, int]] = {
    ErrorKind.INVALID_ARGUMENT: (grpc.StatusCode.INVALID_ARGUMENT, 422),
    ErrorKind.NOT_FOUND: (grpc.StatusCode.NOT_FOUND, 404),
    ErrorKind.ALREADY_EXISTS: (grpc.StatusCode.ALREADY_EXISTS, 409),
    ErrorKind.PERMISSION_DENIED: (grpc.StatusCode.PERMISSION_DENIED, 403),
    ErrorKind.UNAUTHENTICATED: (grpc.StatusCode.UNAUTHENTICATED, 401),
    ErrorKind.FAILED_PRECONDITION: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    ErrorKind.PAYMENT_REQUIRED: (grpc.StatusCode.FAILED_PRECONDITION, 402),
    ErrorKind.CONFLICT: (grpc.StatusCode.ABORTED, 409),
    ErrorKind.IDEMPOTENCY_KEY_REUSED: (grpc.StatusCode.INVALID_ARGUMENT, 422),
    ErrorKind.RATE_LIMITED: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    ErrorKind.UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, 503),
    ErrorKind.DEADLINE_EXCEEDED: (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    ErrorKind.INTERNAL: (grpc.StatusCode.INTERNAL, 500),
}

# Reasons whose gRPC status is shared with another kind: decide the kind by reason first.
_KIND_BY_REASON = {
    "IDEMPOTENCY_KEY_REUSED": ErrorKind.IDEMPOTENCY_KEY_REUSED,
    "PAYMENT_DECLINED": ErrorKind.PAYMENT_REQUIRED,
}
_KIND_BY_STATUS = {
    status: kind
    for kind, (status, _) in ERROR_TABLE.items()
    if kind not in (ErrorKind.IDEMPOTENCY_KEY_REUSED, ErrorKind.PAYMENT_REQUIRED)
}
_CLASS_BY_KIND: dict[ErrorKind, type[ReservaError]] = {
    ErrorKind.INVALID_ARGUMENT: InvalidArgument,
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.ALREADY_EXISTS: AlreadyExists,
    ErrorKind.PERMISSION_DENIED: PermissionDenied,
    ErrorKind.UNAUTHENTICATED: Unauthenticated,
    ErrorKind.FAILED_PRECONDITION: FailedPrecondition,
    ErrorKind.PAYMENT_REQUIRED: PaymentDeclined,
    ErrorKind.CONFLICT: Conflict,
    ErrorKind.IDEMPOTENCY_KEY_REUSED: IdempotencyKeyReused,
    ErrorKind.RATE_LIMITED: RateLimited,
    ErrorKind.UNAVAILABLE: Unavailable,
    ErrorKind.DEADLINE_EXCEEDED: DeadlineExceeded,
}

INTERNAL_MESSAGE = "internal error; it has been logged"


def grpc_status_for(error: ReservaError) -> grpc.StatusCode:
    return ERROR_TABLE[error.kind][0]


def http_status_for(error: ReservaError) -> int:
    return ERROR_TABLE[error.kind][1]


def error_from_status(
    code: grpc.StatusCode, message: str, reason: str | None, metadata: dict[str, str] | None = None
) -> ReservaError:
    """Rebuild a domain error from a gRPC status (client side)."""
    kind = _KIND_BY_REASON.get(reason or "") or _KIND_BY_STATUS.get(code, ErrorKind.INTERNAL)
    if kind is ErrorKind.INTERNAL:
        return ReservaError(message=INTERNAL_MESSAGE, reason=reason or "INTERNAL")
    cls = _CLASS_BY_KIND[kind]
    error = cls(message, reason=reason or kind.name)
    error.metadata = dict(metadata or {})
    return error
