"""Use cases, one function per RPC. Each mutating use case runs as: claim the idempotency key and
reserve the operation on the payment (one short transaction, the payment row locked FOR UPDATE) ->
ask the card processor (no transaction open) -> record the answer, the ledger entries, the events
and the idempotency response (one short transaction). A processor that does not answer leaves the
payment UNKNOWN, never money taken without a record: reconciliation and webhooks settle it."""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from kit.db import with_retries
from kit.errors import Conflict, InvalidArgument, PaymentDeclined, PermissionDenied
from kit.identity import Caller
from payments.domain.errors import PaymentNotFound, PaymentOutcomeUnknown, ProviderUnavailable
from payments.domain.model import (
    LedgerEntry,
    Payment,
    PaymentKind,
    PaymentStatus,
    PendingOperation,
    Refund,
    VoidAnswer,
    new_id,
)
from payments.domain.money import Money
from payments.service_layer import idempotency
from payments.service_layer.card_processor import CardProcessor, ProviderDeclined, ProviderTimeout, WebhookVerifier
from payments.service_layer.snapshots import (
    payment_from_snapshot,
    payment_snapshot,
    refund_from_snapshot,
    refund_snapshot,
)

T = TypeVar("T")
log = logging.getLogger("payments.handlers")


@dataclass
class Deps:
    """What the use cases need, built by bootstrap."""

    uow: Callable[[], object]
    processor: CardProcessor
    clock: Callable[[], datetime]
    webhooks: WebhookVerifier | None = None
    provider_timeout_s: float = 10.0
    # An in-progress key untouched for this long belongs to a process that died mid-flight.
    stale_after: timedelta = timedelta(minutes=2)


# ---- commands (validated plain values; the servicer builds them from protos) ---------------------


@dataclass(frozen=True)
class AuthorizePayment:
    request_id: str
    booking_id: str
    user_id: str
    amount: Money
    payment_method_token: str
    kind: PaymentKind


@dataclass(frozen=True)
class CapturePayment:
    request_id: str
    payment_id: str
    amount: Money | None


@dataclass(frozen=True)
class VoidPayment:
    request_id: str
    payment_id: str
    reason: str


@dataclass(frozen=True)
class RefundPayment:
    request_id: str
    payment_id: str
    amount: Money | None
    reason: str


def require_uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"{field} must be a UUID, got {value!r}") from None


def _require_reason(reason: str) -> str:
    if len(reason) > 500:
        raise InvalidArgument("reason must be at most 500 characters")
    return reason


async def _ask_provider(deps: Deps, call: Awaitable):
    """The processor call with a hard timeout: an unanswered call is a ProviderTimeout, whatever the
    processor implementation does."""
    try:
        return await asyncio.wait_for(call, deps.provider_timeout_s)
    except TimeoutError:
        raise ProviderTimeout("the card processor did not answer in time") from None


async def _load_for_update(uow, payment_id: str) -> Payment:
    payment = await uow.payments.get(payment_id, for_update=True)
    if payment is None:
        raise PaymentNotFound(payment_id)
    return payment


def _declined(payment: Payment) -> PaymentDeclined:
    return PaymentDeclined(
        f"the card was declined ({payment.failure_reason})",
        metadata={"payment_id": payment.id, "failure_reason": payment.failure_reason},
    )


def _unavailable(payment: Payment) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"the card processor did not answer; payment {payment.id} is UNKNOWN until reconciled. "
        "Do not retry with a new request_id.",
        metadata={"payment_id": payment.id},
    )


def _still_pending(uow, operation: str):
    """For idempotency.claim: does the payment still have `operation` pending (its first call may
    still be running), or has it been settled (by that call or by the reconciler)?"""

    async def check(payment_id: str) -> bool:
        payment = await uow.payments.get(payment_id)
        return payment is not None and payment.pending_operation is PendingOperation(operation)

    return check


async def _replay(deps: Deps, stored: idempotency.StoredResult, operation: str = ""):
    """The response of a completed request, for a retry with the same key and parameters."""
    data = stored.data
    if stored.outcome_unknown:
        payment = await get_payment(deps, stored.resource_id, caller=None)
        if (
            not payment.is_settled
            or payment.status is PaymentStatus.UNKNOWN
            or (operation in ("capture", "void") and payment.pending_operation is PendingOperation(operation))
        ):
            raise PaymentOutcomeUnknown(
                f"the outcome of payment {payment.id} is not known yet; it will be settled by reconciliation",
                metadata={"payment_id": payment.id},
            )
        if payment.status is PaymentStatus.FAILED:
            raise _declined(payment)
        if operation == "capture" and not payment.is_captured:
            # Settled without a capture: the processor refused it (the charge expired or was voided).
            raise PaymentDeclined(
                f"the card processor did not capture payment {payment.id}; its authorization stands",
                metadata={"payment_id": payment.id, "failure_reason": "capture_refused"},
            )
        if "refund_id" in data:
            return await _refund_result(deps, data["refund_id"], payment.id)
        return payment
    if data.get("error"):
        raise idempotency.error_from_record(data["error"])
    payment = payment_from_snapshot(data["payment"])
    if data.get("refund"):
        return refund_from_snapshot(data["refund"]), payment
    return payment


async def _refund_result(deps: Deps, refund_id: str, payment_id: str):
    """The refund and its payment as of one moment: one snapshot (REPEATABLE READ) for both reads.
    A webhook or the reconciler settles the two in one transaction; read apart, a settled refund
    could be answered beside its payment from before the settlement."""
    async with deps.uow() as uow:
        await uow.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return await uow.payments.get_refund(refund_id), await uow.payments.get(payment_id)


# ---- AuthorizePayment ----------------------------------------------------------------------------


async def authorize_payment(deps: Deps, cmd: AuthorizePayment) -> Payment:
    """Reserve the amount on the client's card -> AUTHORIZED (or FAILED, or UNKNOWN)."""
    params = {
        "booking_id": cmd.booking_id, "user_id": cmd.user_id, "amount": cmd.amount.amount_minor,
        "currency": cmd.amount.currency, "kind": cmd.kind.value, "token": cmd.payment_method_token,
    }  # fmt: skip
    now = deps.clock()
    payment = Payment.create(
        payment_id=new_id(), booking_id=cmd.booking_id, user_id=cmd.user_id, kind=cmd.kind,
        amount=cmd.amount, request_id=cmd.request_id, now=now,
    )  # fmt: skip

    async def begin():
        async with deps.uow() as uow:
            # The usual case, a new key: claimed and the payment written by one statement.
            uow.lone_statement()
            claimed = await uow.payments.add_if_claimed(
                payment, cmd.request_id, "authorize", idempotency.fingerprint(params), now
            )
            if claimed:
                await uow.commit()
                return None
        async with deps.uow() as uow:  # the key was there: what it holds decides
            stored = await idempotency.claim(
                uow, cmd.request_id, "authorize", params, payment.id, now, deps.stale_after,
                _still_pending(uow, "authorize"),
            )  # fmt: skip
            if stored is not None:
                return stored
            await uow.payments.add(payment)
            await uow.commit()
            return None

    stored = await with_retries(begin)
    if stored is not None:
        return await _replay(deps, stored)
    try:
        authorization = await _ask_provider(
            deps,
            deps.processor.authorize(idempotency_key=payment.id, amount=cmd.amount, token=cmd.payment_method_token),
        )
        outcome = ("authorized", authorization)
    except ProviderDeclined as declined:
        outcome = ("declined", declined)
    except ProviderTimeout:
        outcome = ("unknown", None)
    except Exception:  # any other processor failure: we cannot know whether the card was charged
        log.exception("card processor failed during authorization", extra={"payment_id": payment.id})
        outcome = ("unknown", None)
    return await _as_known_or_read(
        payment, lambda known: _finish_authorization(deps, payment.id, cmd.request_id, outcome, known)
    )


async def _as_known_or_read(known: Payment | None, step: Callable[[Payment | None], Awaitable[T]]) -> T:
    """Run a recording step on a copy of the payment this flow wrote last, without reading it again
    (its save's version check proves nobody changed it since); if somebody did (the reconciler, a
    webhook), or the flow has no copy, run it on the row as it is now."""
    if known is not None:
        try:
            return await with_retries(lambda: step(copy.deepcopy(known)))
        except Conflict:
            pass
    return await with_retries(lambda: step(None))


async def _known_or_locked(uow, payment_id: str, known: Payment | None) -> Payment:
    """The flow's own copy, taken as loaded (its save is version-checked), or the row, locked."""
    if known is None:
        return await _load_for_update(uow, payment_id)
    uow.payments.adopt(known)
    return known


async def _finish_authorization(
    deps: Deps, payment_id: str, request_id: str, outcome, known: Payment | None = None
) -> Payment:
    now = deps.clock()
    async with deps.uow() as uow:
        if known is not None:
            # Nothing to read: the answer, the payment, its events and the key's response are one
            # statement, sent as a transaction of its own.
            uow.lone_statement()
        payment = await _known_or_locked(uow, payment_id, known)
        kind, detail = outcome
        # A webhook may have settled the payment already; then its state is the answer.
        if payment.pending_operation is PendingOperation.AUTHORIZE and payment.status in (
            PaymentStatus.REQUIRES_AUTHORIZATION,
            PaymentStatus.UNKNOWN,
        ):
            if kind == "authorized":
                payment.authorization_succeeded(detail.reference, detail.expire_time, now)
            elif kind == "declined":
                payment.authorization_declined(detail.code, detail.reference, now)
            else:
                payment.outcome_unknown(now)
            changed = True
        elif known is not None:
            raise Conflict("the payment is not as this flow left it: read it")  # _as_known_or_read reads it
        else:
            changed = False
        error = None
        if payment.status is PaymentStatus.FAILED:
            error = _declined(payment)
            result = {"payment": payment_snapshot(payment), "error": idempotency.error_record(error)}
        elif payment.status in (PaymentStatus.UNKNOWN, PaymentStatus.REQUIRES_AUTHORIZATION):
            error = _unavailable(payment)
            result = {"payment_id": payment.id, "outcome_unknown": True}
        else:
            result = {"payment": payment_snapshot(payment)}
        if changed:  # the payment, its events and the key's response: one statement
            await uow.save(payment, (request_id, "authorize", result, now))
        else:
            await uow.idempotency.complete(request_id, "authorize", result, now)
        await uow.commit()
    if error is not None:
        raise error
    return payment


# ---- CapturePayment and VoidPayment --------------------------------------------------------------


async def capture_payment(deps: Deps, cmd: CapturePayment) -> Payment:
    """Charge all or part of an AUTHORIZED payment -> CAPTURED; the rest is released."""
    params = {"payment_id": cmd.payment_id, "amount": cmd.amount and [cmd.amount.amount_minor, cmd.amount.currency]}
    reserved: dict = {}

    def reserve(payment: Payment, now: datetime) -> None:
        reserved["amount"] = payment.reserve_capture(cmd.amount, now)

    begun = await _begin_operation(deps, cmd.request_id, "capture", cmd.payment_id, params, reserve)
    if isinstance(begun, idempotency.StoredResult):
        return await _replay(deps, begun, "capture")
    call = deps.processor.capture(
        reference=begun.provider_reference, amount=reserved["amount"], idempotency_key=f"capture:{begun.id}"
    )
    return await _finish_operation(
        deps, cmd.request_id, "capture", begun.id, call, lambda p, now: p.capture_succeeded(now), known=begun
    )


async def void_payment(deps: Deps, cmd: VoidPayment) -> Payment:
    """Cancel an AUTHORIZED payment without charging -> VOIDED (a VOIDED one is returned as is).
    While the authorization's outcome is unknown the void is recorded and returned at once (the
    payment still UNKNOWN); the reconciler settles the authorization, then voids it."""
    _require_reason(cmd.reason)
    params = {"payment_id": cmd.payment_id, "reason": cmd.reason}
    answer: dict = {}

    def reserve(payment: Payment, now: datetime) -> None:
        answer["answer_now"] = payment.request_void(cmd.reason, now) is not VoidAnswer.RESERVED

    begun = await _begin_operation(deps, cmd.request_id, "void", cmd.payment_id, params, reserve, answer)
    if isinstance(begun, idempotency.StoredResult):
        return await _replay(deps, begun, "void")
    if answer.get("answer_now"):
        return begun
    call = deps.processor.void(reference=begun.provider_reference, idempotency_key=f"void:{begun.id}")
    return await _finish_operation(
        deps, cmd.request_id, "void", begun.id, call, lambda p, now: p.void_succeeded(cmd.reason, now), known=begun
    )


async def _begin_operation(deps, request_id, operation, payment_id, params, reserve, already=None):
    """Claim the key and reserve the operation on the locked payment row, in one transaction."""

    async def attempt():
        now = deps.clock()
        async with deps.uow() as uow:
            stored = await idempotency.claim(
                uow, request_id, operation, params, payment_id, now, deps.stale_after, _still_pending(uow, operation)
            )
            if stored is not None:
                return stored
            payment = await _load_for_update(uow, payment_id)
            version = payment.version
            reserve(payment, now)
            if already and already.get("answer_now"):
                # Nothing to ask the processor now (already voided, or a void recorded until the
                # authorization's outcome is known): save any change, record the answer with the key.
                if payment.version != version:
                    await uow.save(payment)
                await uow.idempotency.complete(request_id, operation, {"payment": payment_snapshot(payment)}, now)
            else:
                await uow.save(payment)
            await uow.commit()
            return payment

    return await with_retries(attempt)


async def _finish_operation(
    deps, request_id, operation, payment_id, call, succeed, known: Payment | None = None
) -> Payment:
    """Record the processor's answer to an operation _begin_operation reserved (`known`: the payment
    as it saved it)."""
    try:
        await _ask_provider(deps, call)
        outcome, failure = "succeeded", None
    except ProviderDeclined as declined:
        outcome, failure = "declined", declined.code
    except ProviderTimeout:
        outcome, failure = "unknown", None
    except Exception:
        log.exception("card processor failed", extra={"payment_id": payment_id, "operation": operation})
        outcome, failure = "unknown", None

    async def attempt(known: Payment | None):
        now = deps.clock()
        async with deps.uow() as uow:
            if known is not None:
                uow.lone_statement()  # one statement: see _finish_authorization
            payment = await _known_or_locked(uow, payment_id, known)
            error = None
            if payment.pending_operation is not PendingOperation(operation):
                if known is not None:
                    raise Conflict("the payment is not as this flow left it: read it")
                # Settled meanwhile by the reconciler (this answer came later than its cutoff): the
                # payment's state is the answer; the processor moved the money at most once (one key).
                settled = {"payment_id": payment.id, "outcome_unknown": True}
                await uow.idempotency.complete(request_id, operation, settled, now)
                await uow.commit()
                return idempotency.StoredResult(settled)
            if outcome == "succeeded":
                succeed(payment, now)
                result = {"payment": payment_snapshot(payment)}
            elif outcome == "declined":
                payment.operation_rejected(now)
                error = PaymentDeclined(
                    f"the card processor refused the {operation} ({failure})",
                    metadata={"payment_id": payment.id, "failure_reason": failure or ""},
                )
                result = {"payment": payment_snapshot(payment), "error": idempotency.error_record(error)}
            else:
                payment.outcome_unknown(now)
                error = _unavailable(payment)
                result = {"payment_id": payment.id, "outcome_unknown": True}
            # The payment, its events and the key's response: one statement.
            await uow.save(payment, (request_id, operation, result, now))
            await uow.commit()
        if error is not None:
            raise error
        return payment

    answer = await _as_known_or_read(known, attempt)
    if isinstance(answer, idempotency.StoredResult):
        return await _replay(deps, answer, operation)
    return answer


# ---- RefundPayment -------------------------------------------------------------------------------


def require_refunder(caller: Caller | None) -> None:
    """Refunds come from the platform (the booking service; the gateway for a booking's host, whom
    only it can tell) or an agent; a payer never refunds their own payment."""
    if caller is not None and caller.user_id and not caller.is_privileged:
        raise PermissionDenied("only agents and the platform may refund a payment", reason="NOT_ALLOWED_TO_REFUND")


async def refund_payment(deps: Deps, cmd: RefundPayment) -> tuple[Refund, Payment]:
    """Return all or part of what was captured; several refunds never exceed the captured amount."""
    _require_reason(cmd.reason)
    params = {
        "payment_id": cmd.payment_id, "reason": cmd.reason,
        "amount": cmd.amount and [cmd.amount.amount_minor, cmd.amount.currency],
    }  # fmt: skip
    refund_id = new_id()

    async def begin():
        now = deps.clock()
        async with deps.uow() as uow:
            stored = await idempotency.claim(
                uow, cmd.request_id, "refund", params, cmd.payment_id, now, deps.stale_after
            )
            if stored is not None:
                return stored, None
            payment = await _load_for_update(uow, cmd.payment_id)
            refund = payment.reserve_refund(refund_id, cmd.amount, cmd.reason, now)
            await uow.save(payment)
            await uow.payments.add_refund(refund)
            await uow.commit()
            return payment, refund

    begun, refund = await with_retries(begin)
    if isinstance(begun, idempotency.StoredResult):
        return await _replay(deps, begun)
    try:
        reference = await _ask_provider(
            deps,
            deps.processor.refund(reference=begun.provider_reference, amount=refund.amount, idempotency_key=refund.id),
        )
        outcome = ("succeeded", reference)
    except ProviderDeclined as declined:
        outcome = ("declined", declined.code)
    except Exception as error:  # timeout or failure: the refund stays PENDING, its amount reserved
        log.warning("refund not confirmed by the processor", extra={"refund_id": refund.id, "error": repr(error)})
        outcome = ("unknown", None)
    return await with_retries(lambda: _finish_refund(deps, cmd.request_id, begun.id, replace(refund), outcome))


async def _finish_refund(deps: Deps, request_id: str, payment_id: str, refund: Refund, outcome):
    now = deps.clock()
    kind, detail = outcome
    async with deps.uow() as uow:
        payment = await _load_for_update(uow, payment_id)
        error = None
        if kind == "succeeded":
            payment.refund_succeeded(refund, detail, now)
            result = {"payment": payment_snapshot(payment), "refund": refund_snapshot(refund)}
        elif kind == "declined":
            payment.refund_failed(refund, now, detail)
            error = PaymentDeclined(
                f"the card processor refused the refund ({detail})",
                metadata={"payment_id": payment.id, "refund_id": refund.id, "failure_reason": detail},
            )
            result = {"payment": payment_snapshot(payment), "error": idempotency.error_record(error)}
        else:
            error = ProviderUnavailable(
                f"the card processor did not confirm refund {refund.id}; it stays PENDING",
                metadata={"payment_id": payment.id, "refund_id": refund.id},
            )
            result = {"payment_id": payment.id, "refund_id": refund.id, "outcome_unknown": True}
        if kind != "unknown" and not await uow.payments.save_refund(refund, now):
            # The reconciler settled the refund first (this answer came that late): its record stands.
            refund, payment, error = await uow.payments.get_refund(refund.id), await uow.payments.get(payment_id), None
            result = {"payment": payment_snapshot(payment), "refund": refund_snapshot(refund)}
        else:
            await uow.save(payment)
        await uow.idempotency.complete(request_id, "refund", result, now)
        await uow.commit()
    if error is not None:
        raise error
    return refund, payment


# ---- reads ---------------------------------------------------------------------------------------


def _may_see(caller: Caller | None, payment: Payment) -> bool:
    return caller is None or caller.is_privileged or not caller.user_id or caller.user_id == payment.user_id


async def get_payment(deps: Deps, payment_id: str, caller: Caller | None) -> Payment:
    """One payment; NOT_FOUND if unknown or another user's."""
    async with deps.uow() as uow:
        payment = await uow.payments.get(payment_id)
    if payment is None or not _may_see(caller, payment):
        raise PaymentNotFound(payment_id)
    return payment


async def list_payments(
    deps: Deps, *, booking_id: str | None, user_id: str | None, after, limit: int, caller: Caller | None
) -> list[Payment]:
    """A page of a booking's or a user's payments, newest first (limit + 1 to detect a next page)."""
    if user_id and caller is not None and not caller.is_privileged and caller.user_id != user_id:
        raise PermissionDenied("you may list only your own payments", reason="NOT_PAYMENT_OWNER")
    async with deps.uow() as uow:
        payments = await uow.payments.list_for(booking_id=booking_id, user_id=user_id, after=after, limit=limit)
    return [p for p in payments if _may_see(caller, p)]


async def batch_get_by_booking(deps: Deps, booking_ids: list[str]) -> dict[str, list[Payment]]:
    """Payments of many bookings, newest first per booking."""
    async with deps.uow() as uow:
        payments = await uow.payments.for_bookings(booking_ids)
    grouped: dict[str, list[Payment]] = {b: [] for b in booking_ids}
    for payment in payments:
        grouped[payment.booking_id].append(payment)
    return grouped


async def list_ledger_entries(
    deps: Deps, payment_id: str, after_seq: int, limit: int, caller: Caller | None
) -> list[LedgerEntry]:
    """A page of a payment's ledger, oldest first."""
    async with deps.uow() as uow:
        payment = await uow.payments.get(payment_id)
        if payment is None or not _may_see(caller, payment):
            raise PaymentNotFound(payment_id)
        return await uow.payments.ledger(payment_id, after_seq, limit)
