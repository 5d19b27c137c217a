"""Background work of the gateway process."""

from __future__ import annotations

import asyncio
import logging

from gateway.service_layer.handlers import IdentityDeps, SendContactDetails, retry_contact_shares
from kit.context import current_operation
from kit.pauses import pause

log = logging.getLogger("reserva.gateway.workers")


def contact_share_retrier(deps: IdentityDeps, send: SendContactDetails, interval_s: float, batch_size: int = 50):
    """Delivers the contact changes that notifications did not take when they were made."""

    async def run(stop: asyncio.Event) -> None:
        current_operation.set("retry_contact_shares")
        while not stop.is_set():
            try:
                while await retry_contact_shares(deps, send, batch_size) == batch_size and not stop.is_set():
                    pass
            except Exception as error:  # the database may be away; the next pass retries
                log.warning("contact share retry pass failed", extra={"error": repr(error)})
            await pause(stop, interval_s)

    return run
