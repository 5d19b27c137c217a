"""Admission control for the booking flows (sagas).

A flow waits for a free place only while its caller can still get an answer: its deadline minus the
time a flow needs (`reserve_s`). Past that it is refused at once with BOOKING_BUSY (UNAVAILABLE,
retryable) instead of starting a saga it could not finish. Once admitted, a flow runs to a defined end
even if its caller gives up or its deadline passes: a winner abandoned half-way would free its slot
after every competitor had been told the slot was taken. Its peer calls then carry their own
deadlines (settings.peer_deadline_s), not what is left of the caller's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from booking.domain.errors import BookingBusy
from kit.context import current_deadline, remaining_time

T = TypeVar("T")


class Admission:
    def __init__(self, limit: int, reserve_s: float):
        self._slots = asyncio.Semaphore(limit)
        self.reserve_s = reserve_s
        self._running: set[asyncio.Task] = set()

    async def run(self, flow: Callable[[], Awaitable[T]]) -> T:
        """Run `flow` when a place is free; shielded from the caller's cancellation once started."""
        left = remaining_time()
        wait = None if left is None else left - self.reserve_s
        if wait is not None and wait <= 0:
            raise BookingBusy()
        try:
            await asyncio.wait_for(self._slots.acquire(), wait)
        except TimeoutError:
            raise BookingBusy() from None
        task = asyncio.create_task(self._admitted(flow))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _admitted(self, flow: Callable[[], Awaitable[T]]) -> T:
        current_deadline.set(None)  # this task's own context copy: peers get their own deadlines
        try:
            return await flow()
        finally:
            self._slots.release()

    async def drain(self, timeout_s: float) -> None:
        """Let running flows reach their defined end (server shutdown)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout_s)
