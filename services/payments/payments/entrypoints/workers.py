"""Background workers of the payments service: the reconciler and the idempotency key sweeper."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from kit.context import current_operation
from kit.metrics import record_sweep
from kit.pauses import pause
from payments.service_layer import settlement
from payments.service_layer.handlers import Deps

log = logging.getLogger("payments.workers")


def periodic(name: str, interval_s: float, job):
    async def run(stop: asyncio.Event) -> None:
        while not await pause(stop, interval_s):
            token = current_operation.set(name)
            try:
                await job()
            except Exception:
                log.exception("background job failed; will run again", extra={"job": name})
            finally:
                current_operation.reset(token)

    return run


def reconciler(deps: Deps, interval_s: float, older_than_s: float, batch: int):
    async def job() -> None:
        counts = await settlement.reconcile_unsettled(deps, timedelta(seconds=older_than_s), batch)
        if counts.examined or counts.refunds_succeeded or counts.refunds_failed or counts.refunds_pending:
            log.info("reconciled payments", extra={"counts": counts.__dict__})

    return periodic("reconciler", interval_s, job)


def idempotency_sweeper(deps: Deps, interval_s: float, retention_hours: float):
    retention = timedelta(hours=max(24.0, retention_hours))  # keys are kept at least 24 hours

    async def job() -> None:
        deleted = 1
        while deleted > 0:
            deleted = await settlement.sweep_idempotency_keys(deps, retention)
            record_sweep("payments", "idempotency_keys", deleted)

    return periodic("idempotency_sweeper", interval_s, job)
