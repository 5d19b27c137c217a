"""Settling payments whose outcome we do not know: provider webhooks and reconciliation. Both ask
the processor for the charge's current state (outside any transaction), then apply it to the locked
payment row, so that late or out-of-order webhooks can never move a payment backwards."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from kit.db import with_retries
from payments.domain.model import PaymentStatus
from payments.service_layer import idempotency
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

    return await with_retries(apply)


async def reconcile_unsettled(deps: Deps, older_than: timedelta, max_payments: int) -> ReconcileCounts:
    """Ask the processor about payments unsettled for at least `older_than` and settle them."""
    async with deps.uow() as uow:
        ids = await uow.payments.unsettled(deps.clock() - older_than, max_payments + 1)
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
        status = await with_retries(lambda pid=payment_id, c=charge: _settle(deps, pid, c))
        if status in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.VOIDED):
            counts["succeeded"] += 1
        elif status is PaymentStatus.FAILED:
            counts["failed"] += 1
        else:
            counts["still_unknown"] += 1
    return ReconcileCounts(min(len(ids), max_payments), more_remaining=len(ids) > max_payments, **counts)


async def _settle(deps: Deps, payment_id: str, charge) -> PaymentStatus | None:
    now = deps.clock()
    async with deps.uow() as uow:
        payment = await uow.payments.get(payment_id, for_update=True)
        if payment is None:
            return None
        if payment.settle_from_provider(charge, now):
            await uow.save(payment)
            await uow.commit()
        return payment.status


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
