"""Small helpers shared by the benchmark scripts: closed-loop and open-loop drivers, percentiles,
throwaway databases, and one JSON shape for results (`scenarios`: name, throughput, percentiles,
errors by kind, locks per transaction)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# The services run as deployed (deploy/base/*.yaml): the lock probe measures this share of the
# availability, booking and payments transactions. The locks-per-transaction figures come from them.
PRODUCTION_LOCK_PROBE_SAMPLE_RATE = 0.05
# ... and trace the share of requests deploy/overlays/prod/platform-settings.yaml traces (the
# OpenTelemetry SDK reads these standard variables when the services set up tracing).
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
os.environ.setdefault("OTEL_TRACES_SAMPLER_ARG", "0.1")


def as_deployed_process() -> None:
    """What a service process does once started (kit.server.serve_forever), for benchmarks that run
    the services in their own process: garbage collection tuned for a server."""
    from kit.gc_tuning import tune_for_server

    tune_for_server()


@contextmanager
def load_generator_without_pauses() -> Iterator[None]:
    """For a process that only generates load (the services run in processes of their own): its
    garbage collector is held off while a scenario runs and collects between scenarios. A collector
    pass in the load generator stalls every request in flight and is counted as the platform's
    latency: a 100 ms pass of the driver's oldest generation showed in the REST open loop's p99.
    The services' own collection is untouched (and measured)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Scenario:
    name: str
    calls: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    errors: Counter = field(default_factory=Counter)
    locks: list[int] = field(default_factory=list, repr=False)
    notes: str = ""

    def summary(self) -> dict:
        lat = self.latencies_ms
        return {
            "name": self.name,
            "calls": self.calls,
            "throughput_per_s": round(self.calls / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(percentile(lat, 50), 3),
            "p95_ms": round(percentile(lat, 95), 3),
            "p99_ms": round(percentile(lat, 99), 3),
            "p999_ms": round(percentile(lat, 99.9), 3),
            "errors": dict(self.errors),
            "locks_max": max(self.locks) if self.locks else None,
            "locks_mean": round(statistics.fmean(self.locks), 2) if self.locks else None,
            "notes": self.notes,
        }


async def closed_loop(
    name: str,
    call: Callable[[int], Awaitable[object]],
    concurrency: int,
    total_calls: int,
    classify: Callable[[BaseException], str] = lambda e: type(e).__name__,
) -> Scenario:
    """`concurrency` callers issue `total_calls` calls in all, each waiting for its answer."""
    scenario = Scenario(name)
    counter = iter(range(total_calls))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            try:
                await call(i)
            except Exception as error:  # counted by kind, never hidden
                scenario.errors[classify(error)] += 1
            scenario.latencies_ms.append((time.perf_counter() - started) * 1000)
            scenario.calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    scenario.seconds = time.perf_counter() - started
    return scenario


async def open_loop(
    name: str, call: Callable[[int], Awaitable[object]], rate_per_s: float, duration_s: float
) -> Scenario:
    """Calls start on a fixed schedule whatever the answers do, so slow answers cannot hide queueing:
    latency is measured from the scheduled start."""
    scenario = Scenario(name)
    total = int(rate_per_s * duration_s)
    begin = time.perf_counter()

    async def one(i: int) -> None:
        scheduled = begin + i / rate_per_s
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        try:
            await call(i)
        except Exception as error:
            scenario.errors[type(error).__name__] += 1
        scenario.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        scenario.calls += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    scenario.seconds = time.perf_counter() - begin
    return scenario


async def throwaway_database(services: list[str]) -> tuple[str, str, Callable[[], Awaitable[None]]]:
    """A fresh, migrated database; returns (admin_url, name, drop)."""
    from kit.cli import migrate_all
    from kit.infra import ensure_infrastructure
    from kit.provision import drop_database

    infra = ensure_infrastructure()
    name = f"reserva_bench_{uuid.uuid4().hex[:8]}"
    await migrate_all(infra.admin_database_url, name, services=services)

    async def drop() -> None:
        await drop_database(infra.admin_database_url, name)

    return infra.admin_database_url, name, drop


def machine() -> str:
    from kit import event_loop

    return (
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {os.uname().sysname} {os.uname().machine}, "
        f"{event_loop.name()} event loop"
    )


def write_results(stem: str, scenarios: list[dict], extra: dict | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.json"
    payload = {"machine": machine(), "scenarios": scenarios, **(extra or {})}
    path.write_text(json.dumps(payload, indent=2))
    return path


def markdown_table(rows: list[dict]) -> str:
    head = "| scenario | calls | throughput/s | p50 ms | p95 ms | p99 ms | p99.9 ms | errors | locks max/mean |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        locks = f"{r.get('locks_max')}/{r.get('locks_mean')}" if r.get("locks_max") is not None else "-"
        errors = ", ".join(f"{k}: {v}" for k, v in (r.get("errors") or {}).items()) or "0"
        lines.append(
            f"| {r['name']} | {r.get('calls', '')} | {r.get('throughput_per_s', '')} | {r.get('p50_ms', '')} |"
            f" {r.get('p95_ms', '')} | {r.get('p99_ms', '')} | {r.get('p999_ms', '')} | {errors} | {locks} |"
        )
    return "\n".join(lines)


def asdict_scenario(s: Scenario) -> dict:
    return asdict(s)
