"""Garbage collection tuned for a long-running server process. CPython's defaults collect the
young generation every 700 allocations and, every so often, walk every object the process holds,
startup's modules and descriptors included: under load those full walks were most of HoldSlots'
contended p99.9 (about 125 ms against about 80 ms tuned, ceiling_bench at 32 callers). Tuned, the
objects alive after startup are frozen out of the walks (gc.freeze) and the young generation is
collected every 20,000 allocations. Reference counting still frees almost everything at once;
only cycles wait a little longer."""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 20_000


def tune_for_server() -> None:
    """Call once, after startup (imports, servers built): what exists then stays."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, 20, 20)
