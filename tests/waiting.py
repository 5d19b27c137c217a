"""Waiting in tests for what happens in the background (a consumer, a relay, a worker): poll a
condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio


async def wait_until(predicate, timeout_s: float = 60.0, interval_s: float = 0.05):
    """Polls an (async or plain) predicate until it returns a truthy value, which it returns; fails
    on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval_s)
