"""The event loop every Reserva process runs on: uvloop (libuv, written in Cython) where it is
installed, else asyncio's own; `RESERVA_EVENT_LOOP=asyncio` chooses asyncio's (to compare, or to
debug with asyncio's own tools). asyncpg, grpc.aio and uvicorn all run on it; uvloop does the same
work with less Python per socket event and callback, which is much of what a service does per call
(the README's benchmark section has the figures of both)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (asyncio's default) where uvloop is not installed or
    RESERVA_EVENT_LOOP says asyncio."""
    if os.environ.get("RESERVA_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # uvloop has no Windows build; the platform runs there, only slower
        return None
    return uvloop.new_event_loop


def name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the platform's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
