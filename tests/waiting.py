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


async def consumed_through(redis, stream: str, message_id: str, group: str = "notifications") -> bool:
    """True once the group has read the stream up to `message_id` and acknowledged all it read.

    "Nothing pending" alone is also true before the consumer has read the entry at all.
    """
    [info] = [g for g in await redis.xinfo_groups(stream) if g["name"].decode() == group]
    read_up_to = tuple(int(part) for part in info["last-delivered-id"].decode().split("-"))
    return read_up_to >= tuple(int(part) for part in message_id.split("-")) and info["pending"] == 0
