"""Idempotency keys with Stripe's semantics. A key is claimed (in progress) in the same short
transaction that reserves the payment, before the provider is called, and completed with the
response in the transaction that records the provider's answer. So:
  same key, same parameters, completed  -> the stored response (also after a restart);
  same key, other parameters            -> IdempotencyKeyReused;
  same key while the first is in flight -> OperationInProgress (ABORTED), never a second charge;
  same key, the first call gone (its process died, or its recording transaction was cut, and the
  reconciler settled the operation) -> taken over: the answer is the payment's state.
A request that fails before the provider is called leaves no key behind (its transaction rolls
back), so a retry is evaluated afresh."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from kit.errors import (
    ErrorKind,
    FailedPrecondition,
    IdempotencyKeyReused,
    InvalidArgument,
    PaymentDeclined,
    ReservaError,
    Unavailable,
)
from payments.domain.errors import OperationInProgress


@dataclass(frozen=True)
class StoredResult:
    """A completed key's response: a payment snapshot, maybe a refund, maybe an error to raise
    again; `outcome_unknown` when the provider never answered (then the payment is re-read)."""

    data: dict

    @property
    def outcome_unknown(self) -> bool:
        return bool(self.data.get("outcome_unknown"))

    @property
    def resource_id(self) -> str:
        return self.data["payment_id"]


def fingerprint(params: dict) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def require_request_id(request_id: str) -> str:
    if not request_id or len(request_id) > 64:
        raise InvalidArgument("request_id is required: an idempotency key of 1 to 64 characters")
    return request_id


async def claim(
    uow,
    request_id: str,
    operation: str,
    params: dict,
    resource_id: str | None,
    now: datetime,
    stale_after: timedelta,
    still_pending: Callable[[str], Awaitable[bool]] | None = None,
) -> StoredResult | None:
    """None if this call now owns the key; the stored result if the key was completed before.
    `still_pending(resource_id)`: whether the key's operation is still pending on its resource."""
    existing = await uow.idempotency.claim(request_id, operation, fingerprint(params), resource_id, now)
    if existing is None:
        return None
    if existing["fingerprint"] != fingerprint(params):
        raise IdempotencyKeyReused(
            f"request_id {request_id!r} was already used for a {operation} with other parameters; "
            "use a new request_id for a new request"
        )
    if existing["status"] == "completed":
        return StoredResult(existing["result"])
    resource = existing["resource_id"] and str(existing["resource_id"])
    if resource and (
        now - existing["update_time"] > stale_after or (still_pending is not None and not await still_pending(resource))
    ):
        # The call handling it died mid-flight or its recording was cut (a key whose operation is no
        # longer pending was settled by the reconciler): its outcome is whatever the payment says now.
        return StoredResult({"payment_id": resource, "outcome_unknown": True})
    raise OperationInProgress(
        f"a {operation} with request_id {request_id!r} is still in progress; retry later with the same request_id"
    )


def error_record(error: ReservaError) -> dict:
    return {"kind": error.kind.value, "reason": error.reason, "message": error.message, "metadata": error.metadata}


_REPLAYABLE = {
    ErrorKind.PAYMENT_REQUIRED: PaymentDeclined,
    ErrorKind.FAILED_PRECONDITION: FailedPrecondition,
    ErrorKind.UNAVAILABLE: Unavailable,
}


def error_from_record(record: dict) -> ReservaError:
    cls = _REPLAYABLE.get(ErrorKind(record["kind"]), FailedPrecondition)
    error = cls(record["message"], reason=record["reason"])
    error.metadata = dict(record.get("metadata") or {})
    return error
