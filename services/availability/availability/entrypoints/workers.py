"""Background workers of the availability service."""

from __future__ import annotations

import asyncio
import logging

from availability.service_layer.handlers import Deps, sweep_expired_holds
from kit.context import current_operation
from kit.metrics import record_sweep
from kit.pauses import pause

log = logging.getLogger("availability.sweeper")


def hold_sweeper(deps: Deps, interval_s: float, batch_size: int):
    """Frees expired holds in small batches until a pass finds none, then waits `interval_s`."""

    async def run(stop: asyncio.Event) -> None:
        current_operation.set("sweep_expired_holds")
        while not stop.is_set():
            try:
                freed = batch_size
                while freed == batch_size and not stop.is_set():
                    freed = await sweep_expired_holds(deps, batch_size)
                    record_sweep("availability", "expired_holds", freed)
            except Exception as error:  # the database may be away; the next pass retries
                log.warning("sweeper pass failed", extra={"error": repr(error)})
            await pause(stop, interval_s)

    return run
