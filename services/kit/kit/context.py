"""Per-call context carried in contextvars: the operation name (for the lock probe and logs), the
caller, and the absolute deadline of the incoming call (Python gRPC does not propagate deadlines)."""

from __future__ import annotations

import time
from contextvars import ContextVar

from kit.identity import ANONYMOUS, Caller

current_operation: ContextVar[str] = ContextVar("current_operation", default="unknown")
current_caller: ContextVar[Caller] = ContextVar("current_caller", default=ANONYMOUS)
# Absolute time.monotonic() at which the incoming call's deadline expires, or None.
current_deadline: ContextVar[float | None] = ContextVar("current_deadline", default=None)


def remaining_time() -> float | None:
    deadline = current_deadline.get()
    return None if deadline is None else deadline - time.monotonic()
