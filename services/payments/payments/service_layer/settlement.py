"""Settling payments whose outcome we do not know: provider webhooks and reconciliation. Both ask
the processor for the charge's current state (outside any transaction), then apply it to the locked
payment row, so that late or out-of-order webhooks can never move a payment backwards.

Reconciliation also settles captures left in flight (the process died, or the transaction recording
the answer was cut): the provider's record says whether the capture happened; one it never received
is sent again under the same idempotency key. It carries out voids requested while an authorization's
outcome was unknown (in the transaction that settles the authorization the void is reserved, so no
capture slips in; then the provider is asked, then its answer recorded) and settles refunds left
PENDING: a refund the provider has is recorded as SUCCEEDED (ledger entry and event in the same
transaction), one it never received is sent again with the same idempotency key (the refund id), so
it happens at most once. A refund webhook records its payment's settled refunds at once, without
sending any again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from kit.db import with_retries
from payments.domain.model import Payment, PaymentStatus, PendingOperation, Refund, RefundStatus
from payments.service_layer import idempotency
from payments.service_layer.card_processor import ProviderDeclined
from payments.service_layer.handlers import Deps, _ask_provider, require_uuid

log = logging.getLogger("payments.settlement")


@dataclass(frozen=True)
class WebhookOutcome:
    provider_event_id: str
    duplicate: bool
    payment_id: str


@dataclass(frozen=True)
class ReconcileCounts:
    examined: int = 0
    succeeded: int = 0
    failed: int = 0
    still_unknown: int = 0
    more_remaining: bool = False
    # Refunds left PENDING, settled as SUCCEEDED or FAILED, or still pending.
    refunds_succeeded: int = 0
    refunds_failed: int = 0
    refunds_pending: int = 0


async def handle_provider_webhook(deps: Deps, body: bytes, signature: str) -> WebhookOutcome:
    """Verify, deduplicate on the provider's event id, and settle the payment it concerns."""
    event = deps.webhooks.verify_and_parse(body, signature, deps.clock())
    try:
        payment_id = require_uuid(event.charge_key, "charge")
    except Exception:
        payment_id = None
    charge = None
    if payment_id is not None:
        charge = await _ask_provider(deps, deps.processor.retrieve(idempotency_key=payment_id))

    async def apply() -> WebhookOutcome:
        now = deps.clock()
        async with deps.uow() as uow:
            payment = await uow.payments.get(payment_id, for_update=True) if payment_id else None
            if not await uow.provider_events.record(
                event.event_id, event.event_type, payment.id if payment else None, now
            ):
                return WebhookOutcome(event.event_id, True, payment.id if payment else "")
            if payment is not None and charge is not None and payment.settle_from_provider(charge, now):
                await uow.save(payment)
            await uow.commit()
        return WebhookOutcome(event.event_id, False, payment.id if payment else "")

    outcome = await with_retries(apply)
    if outcome.payment_id and not outcome.duplicate and "refund" in event.event_type:
        try:
            await settle_refunds_from_provider(deps, outcome.payment_id)
        except Exception as error:  # the event is recorded: acknowledge it; the reconciler settles them
            log.warning(
                "refund webhook: refunds left to reconciliation",
                extra={"payment_id": outcome.payment_id, "error": repr(error)},
            )
    return outcome


async def settle_refunds_from_provider(deps: Deps, payment_id: str) -> int:
    """A refund webhook: record the payment's PENDING refunds the processor has settled (their
    answers were lost, or are still on the way), each with its ledger entry and event, so that they
    do not wait for the next reconciliation. A refund the processor has no record of is left to the
    reconciler: its call may still be in flight, and only after the cutoff is it sent again.
    Returns how many were settled."""
    async with deps.uow() as uow:
        pending = await uow.payments.pending_refunds(deps.clock() + timedelta(seconds=1), 100, payment_id)
    settled = 0
    for refund, charge_reference in pending:
        outcome = await _refund_outcome(deps, refund, charge_reference, send_if_lost=False)
        if outcome[0] != "unknown":
            await with_retries(lambda r=refund, o=outcome: _settle_refund(deps, r, o))
            settled += 1
    return settled


async def reconcile_unsettled(deps: Deps, older_than: timedelta, max_payments: int) -> ReconcileCounts:
    """Ask the processor about payments unsettled (or with a requested void) for at least
    `older_than` and settle them, then about refunds PENDING that long; at most `max_payments` of
    each per call."""
    cutoff = deps.clock() - older_than
    async with deps.uow() as uow:
        ids = await uow.payments.unsettled(cutoff, max_payments + 1)
    counts = {"succeeded": 0, "failed": 0, "still_unknown": 0}
    for payment_id in ids[:max_payments]:
        try:
            charge = await _ask_provider(deps, deps.processor.retrieve(idempotency_key=payment_id))
        except Exception as error:
            log.warning(
                "reconciliation: processor did not answer", extra={"payment_id": payment_id, "error": repr(error)}
            )
            counts["still_unknown"] += 1
            continue
        status, follow_up = await with_retries(lambda pid=payment_id, c=charge: _settle(deps, pid, c, cutoff))
        if follow_up is not None:
            status = await _send_again(deps, follow_up)
        if status in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.VOIDED):
            counts["succeeded"] += 1
        elif status is PaymentStatus.FAILED:
            counts["failed"] += 1
        else:
            counts["still_unknown"] += 1
    refund_counts, more_refunds = await reconcile_pending_refunds(deps, cutoff, max_payments)
    return ReconcileCounts(
        min(len(ids), max_payments), more_remaining=len(ids) > max_payments or more_refunds, **counts, **refund_counts
    )


async def _settle(deps: Deps, payment_id: str, charge, cutoff) -> tuple[PaymentStatus | None, Payment | None]:
    """Apply the provider's record; return the payment if an operation is to be sent to the
    provider now: a requested void that can now be made (reserved in this transaction, so no
    capture slips in), or a capture the provider never received."""
    now = deps.clock()
    async with deps.uow() as uow:
        payment = await uow.payments.get(payment_id, for_update=True)
        if payment is None:
            return None, None
        # A capture or void reserved before the cutoff and before any provider call could still be
        # running, never answered: its caller died or its recording was cut; ask the record.
        reserved_before = min(cutoff, now - timedelta(seconds=deps.provider_timeout_s))
        stale = payment.presume_unanswered(reserved_before, now)
        changed = payment.settle_from_provider(charge, now) or stale
        void = payment.reserve_requested_void(now)
        if changed or void:
            await uow.save(payment)
            await uow.commit()
        if payment.pending_operation is PendingOperation.CAPTURE and payment.status is PaymentStatus.AUTHORIZED:
            return None, None  # a capture not yet old enough to presume unanswered: not settled
        return payment.status, payment if void or payment.capture_to_resend(charge) else None


async def _send_again(deps: Deps, payment: Payment) -> PaymentStatus | None:
    if payment.pending_operation is PendingOperation.CAPTURE:
        return await _capture(deps, payment)
    return await _void(deps, payment)


async def _capture(deps: Deps, payment: Payment) -> PaymentStatus | None:
    """A capture the provider never received, sent again under the capture's own idempotency key
    (the processor captures at most once per key), then its answer recorded."""
    try:
        call = deps.processor.capture(
            reference=payment.provider_reference,
            amount=payment.money(payment.pending_amount),
            idempotency_key=f"capture:{payment.id}",
        )
        await _ask_provider(deps, call)
        outcome = "succeeded"
    except ProviderDeclined as declined:
        log.error(
            "reconciliation: the processor refused a capture sent again; the authorization stands",
            extra={"payment_id": payment.id, "failure_reason": declined.code},
        )
        outcome = "declined"
    except Exception as error:
        log.warning("reconciliation: capture not answered", extra={"payment_id": payment.id, "error": repr(error)})
        outcome = "unknown"
    return await with_retries(lambda: _record_answer(deps, payment.id, PendingOperation.CAPTURE, outcome))


async def _record_answer(deps: Deps, payment_id: str, operation: PendingOperation, outcome: str):
    """The answer to an operation the reconciler sent (UNKNOWN if unanswered: the next run asks
    the provider's record again); nothing changes if it was settled meanwhile."""
    now = deps.clock()
    async with deps.uow() as uow:
        current = await uow.payments.get(payment_id, for_update=True)
        if current is None or current.pending_operation is not operation:
            return current and current.status  # settled meanwhile (a late answer, another run)
        if outcome == "succeeded" and operation is PendingOperation.CAPTURE:
            current.capture_succeeded(now)
        elif outcome == "succeeded":
            current.void_succeeded(current.void_reason, now)
        elif outcome == "declined":
            current.operation_rejected(now)
        else:
            current.outcome_unknown(now)
        await uow.save(current)
        await uow.commit()
        return current.status


async def _void(deps: Deps, payment: Payment) -> PaymentStatus | None:
    """The provider call of a requested void, then its answer recorded (UNKNOWN if unanswered: the
    next run asks the provider's record again)."""
    try:
        call = deps.processor.void(reference=payment.provider_reference, idempotency_key=f"void:{payment.id}")
        await _ask_provider(deps, call)
        outcome = "succeeded"
    except ProviderDeclined as declined:
        log.error(
            "reconciliation: the processor refused a requested void; the authorization stands",
            extra={"payment_id": payment.id, "failure_reason": declined.code},
        )
        outcome = "declined"
    except Exception as error:
        log.warning("reconciliation: void not answered", extra={"payment_id": payment.id, "error": repr(error)})
        outcome = "unknown"
    return await with_retries(lambda: _record_answer(deps, payment.id, PendingOperation.VOID, outcome))


async def reconcile_pending_refunds(deps: Deps, created_before, max_refunds: int) -> tuple[dict[str, int], bool]:
    """Settle refunds PENDING since before `created_before` (their provider call unanswered or lost)
    by asking the processor; returns the counts and whether more remain."""
    async with deps.uow() as uow:
        pending = await uow.payments.pending_refunds(created_before, max_refunds + 1)
    counts = {"refunds_succeeded": 0, "refunds_failed": 0, "refunds_pending": 0}
    for refund, charge_reference in pending[:max_refunds]:
        outcome = await _refund_outcome(deps, refund, charge_reference)
        status = refund.status
        if outcome[0] != "unknown":
            status = await with_retries(lambda r=refund, o=outcome: _settle_refund(deps, r, o))
        key = {RefundStatus.SUCCEEDED: "refunds_succeeded", RefundStatus.FAILED: "refunds_failed"}
        counts[key.get(status, "refunds_pending")] += 1
    return counts, len(pending) > max_refunds


async def _refund_outcome(
    deps: Deps, refund: Refund, charge_reference: str, send_if_lost: bool = True
) -> tuple[str, str]:
    """(succeeded, provider reference) | (declined, failure code) | (unknown, "") from the processor's
    record of the refund; a refund it never received is sent again under the same idempotency key
    (`send_if_lost`), or else unknown."""
    try:
        record = await _ask_provider(
            deps, deps.processor.retrieve_refund(reference=charge_reference, idempotency_key=refund.id)
        )
        if record is None and not send_if_lost:
            return "unknown", ""
        if record is None:
            reference = await _ask_provider(
                deps,
                deps.processor.refund(reference=charge_reference, amount=refund.amount, idempotency_key=refund.id),
            )
            return "succeeded", reference
    except ProviderDeclined as declined:
        log.error(
            "reconciliation: the processor refused a pending refund",
            extra={"refund_id": refund.id, "failure_reason": declined.code},
        )
        return "declined", declined.code
    except Exception as error:
        log.warning("reconciliation: refund not answered", extra={"refund_id": refund.id, "error": repr(error)})
        return "unknown", ""
    if record.status == "succeeded":
        return "succeeded", record.reference
    if record.status == "failed":
        return "declined", record.failure_code
    return "unknown", ""


async def _settle_refund(deps: Deps, refund: Refund, outcome: tuple[str, str]) -> RefundStatus:
    """The refund's answer, its ledger entry, the payment's balances and the event: one transaction."""
    now = deps.clock()
    kind, detail = outcome
    refund = replace(refund)
    async with deps.uow() as uow:
        payment = await uow.payments.get(refund.payment_id, for_update=True)
        if kind == "succeeded":
            payment.refund_succeeded(refund, detail, now)
        else:
            payment.refund_failed(refund, now, detail)
        if not await uow.payments.save_refund(refund, now):  # settled meanwhile (the call's late answer)
            return (await uow.payments.get_refund(refund.id)).status
        await uow.save(payment)
        await uow.commit()
        return refund.status


async def reconcile_payments(deps: Deps, request_id: str, older_than: timedelta, max_payments: int) -> ReconcileCounts:
    """The ReconcilePayments RPC: reconcile_unsettled behind an idempotency key."""
    params = {"older_than_s": older_than.total_seconds(), "max_payments": max_payments}

    async def begin():
        async with deps.uow() as uow:
            stored = await idempotency.claim(uow, request_id, "reconcile", params, None, deps.clock(), deps.stale_after)
            if stored is None:
                await uow.commit()
            return stored

    stored = await with_retries(begin)
    if stored is not None:
        return ReconcileCounts(**stored.data["counts"])
    counts = await reconcile_unsettled(deps, older_than, max_payments)

    async def finish():
        async with deps.uow() as uow:
            await uow.idempotency.complete(request_id, "reconcile", {"counts": counts.__dict__}, deps.clock())
            await uow.commit()

    await with_retries(finish)
    return counts


async def sweep_idempotency_keys(deps: Deps, retention: timedelta, batch: int = 500) -> int:
    """Delete completed keys older than the retention (>= 24 hours), one small batch per call."""
    async with deps.uow() as uow:
        deleted = await uow.idempotency.sweep(deps.clock() - retention, batch)
        await uow.commit()
    return deleted
