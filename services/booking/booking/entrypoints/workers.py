"""Background workers: the sweeper (expiry of pending requests and unpaid holds, completion after the
end, lapsed waitlist offers) and the saga recovery, one loop over the `due_time` index. Bookings are
claimed in small batches with FOR UPDATE SKIP LOCKED and leased (due_time pushed forward) in that short
transaction; the peer calls happen after it, outside any transaction."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime

from sqlalchemy import update

from booking.adapters import orm
from booking.domain.model import Booking, SagaState, Status
from booking.service_layer import handlers
from booking.service_layer.flows import BookingSaga, Deps
from kit.context import current_operation
from kit.metrics import record_sweep
from kit.pauses import pause

log = logging.getLogger("reserva.booking.workers")


async def claim_due(deps: Deps, now: datetime, limit: int) -> list[Booking]:
    async with deps.uow() as uow:
        due = await uow.bookings.claim_due(now, limit)
        if due:
            lease = now + deps.recovery_after
            t = orm.bookings
            await uow.session.execute(update(t).where(t.c.id.in_([b.id for b in due])).values(due_time=lease))
            await uow.commit()
        return due


async def handle_due(deps: Deps, booking: Booking, now: datetime) -> None:
    saga = BookingSaga(deps)
    if booking.saga_state.in_progress:
        recovered = await saga.recover(booking)
        if recovered.status not in (Status.CONFIRMED, Status.APPROVED, Status.REQUESTED):
            await handlers.offer_freed(deps, recovered.place_id, recovered.ranges)  # its slots went back
        return
    if booking.status is Status.CONFIRMED:
        if now >= booking.end:
            await handlers.complete(deps, booking, "system")
        return
    if booking.status is Status.REQUESTED:
        await saga.persist(booking.id, lambda b, t: b.expire(t, "no decision in time"))
        return
    if booking.status in (Status.APPROVED, Status.HELD):

        def lapse(b: Booking, t: datetime) -> None:
            b.expire(t, "not paid in time")
            b.set_saga(SagaState.COMPENSATING, t, deps.recovery_after)

        expired = await saga.persist(booking.id, lapse)
        await saga.recover(expired)
        await handlers.offer_freed(deps, expired.place_id, expired.ranges)


async def sweep_once(deps: Deps, now: datetime | None = None) -> int:
    """One batch: returns how many bookings and lapsed waitlist offers were handled."""
    token = current_operation.set("sweeper")
    try:
        if now is not None:  # a given time (tests, replays) is the clock of the whole sweep
            deps = replace(deps, clock=lambda: now)
        now = deps.clock()
        due = await claim_due(deps, now, deps.settings.sweeper_batch_size)
        record_sweep("booking", "sweeper", len(due))
        for booking in due:
            try:
                await handle_due(deps, booking, now)
            except Exception as error:  # one bad booking must not stop the sweep; it comes back later
                log.warning("sweep failed", extra={"booking_id": booking.id, "error": repr(error)})
        return len(due) + await handlers.expire_lapsed_offers(deps, deps.settings.sweeper_batch_size)
    finally:
        current_operation.reset(token)


async def run_sweeper(deps: Deps, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            handled = await sweep_once(deps)
        except Exception as error:
            log.warning("sweeper failed; will retry", extra={"error": repr(error)})
            handled = 0
        if handled >= deps.settings.sweeper_batch_size:
            continue
        await pause(stop, deps.settings.sweeper_interval_s)
