"""Operations snapshots: every process (each service replica and the gateway) publishes, every
`ops_snapshot_interval_s`, a small JSON document to Redis under the platform's namespace: its
outbox backlog (unpublished rows and the age of the oldest), its cache hits and misses, the lock
probe's figures per operation, and its latest slow statements. The gateway's operator dashboard
reads them all (`read_snapshots`).

Why Redis and not the database: each service's role can read only its own schema, and the gateway
cannot read the services' tables at all; a snapshot is the service telling what only it can see.

Layout in Redis: one key per process, `<ns>:ops:snapshot:<service>:<instance>`, a JSON string that
expires after three intervals (a stopped process disappears on its own), and a sorted set
`<ns>:ops:snapshots` of those keys scored by publication time, so that the reader needs no SCAN."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from kit.cache import CACHE_STATS
from kit.db import SLOW_STATEMENTS
from kit.lock_probe import READINGS, LockBudget, LockProbe, LockReading
from kit.pauses import pause

log = logging.getLogger("reserva.ops")

MAX_OPERATIONS = 20  # per snapshot, the operations with the most locks
MAX_SLOW_STATEMENTS = 10


def index_key(namespace: str) -> str:
    return f"{namespace}:ops:snapshots"


def snapshot_key(namespace: str, service: str, instance: str) -> str:
    return f"{namespace}:ops:snapshot:{service}:{instance}"


def default_instance() -> str:
    """Host (the pod's name in Kubernetes) and pid, plus a short suffix: tests run several servers
    of one service in one process."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


# --- what a snapshot says (pure) ---------------------------------------------------------------


def _new_operation(operation: str, kind: str) -> dict[str, Any]:
    return {
        "operation": operation,
        "kind": kind,
        "transactions": 0,
        "max_locks": 0,
        "max_relation_locks": 0,
        "max_advisory_locks": 0,
        "last_locks": 0,
    }


def summarize_locks(readings: Iterable[LockReading], service: str, budget: LockBudget) -> dict[str, Any]:
    """The lock probe's readings of one service: per operation the transactions measured and the most
    locks one held; how many came within 80 % of the budget or went over it."""
    operations: dict[tuple[str, str], dict[str, Any]] = {}
    totals = {"transactions": 0, "max_locks": 0, "max_relation_locks": 0, "near_budget": 0, "over_budget": 0}
    for r in readings:
        if r.service != service:
            continue
        over = budget.violation(r) is not None
        near = not over and budget.near_limit(r)
        totals["transactions"] += 1
        totals["max_locks"] = max(totals["max_locks"], r.total_locks)
        totals["max_relation_locks"] = max(totals["max_relation_locks"], r.relation_locks)
        totals["near_budget"] += near
        totals["over_budget"] += over
        op = operations.setdefault((r.operation, r.kind), _new_operation(r.operation, r.kind))
        op["transactions"] += 1
        op["max_locks"] = max(op["max_locks"], r.total_locks)
        op["max_relation_locks"] = max(op["max_relation_locks"], r.relation_locks)
        op["max_advisory_locks"] = max(op["max_advisory_locks"], r.advisory_locks)
        op["last_locks"] = r.total_locks
    ranked = sorted(operations.values(), key=lambda o: (-o["max_locks"], o["operation"]))
    return {
        **totals,
        "budget": {
            "read": budget.read_total,
            "write_relations": budget.write_relations,
            "write_advisory": budget.write_advisory,
        },
        "operations": ranked[:MAX_OPERATIONS],
    }


def write_lock_histogram(service: str) -> dict[str, int]:
    """Every write transaction of `service` the probe measured in this process since it started,
    counted by its relation + advisory locks: {"7": 120, "8": 3}."""
    total: Counter = Counter()
    for (owner, _, _), figures in READINGS.per_operation.items():
        if owner == service:
            total.update(figures.write_locks)
    return {str(locks): count for locks, count in sorted(total.items())}


def hit_rate(hits: int, misses: int) -> float | None:
    lookups = hits + misses
    return round(hits / lookups, 4) if lookups else None


def summarize_cache(now: dict[str, int], before: dict[str, int] | None) -> dict[str, Any]:
    """Hits and misses since the process started, and the hit rate of the last interval alone."""
    before = before or {"hit": 0, "miss": 0, "error": 0}
    recent_hits, recent_misses = now["hit"] - before["hit"], now["miss"] - before["miss"]
    return {
        "hits": now["hit"],
        "misses": now["miss"],
        "errors": now["error"],
        "hit_rate": hit_rate(now["hit"], now["miss"]),
        "recent_hits": recent_hits,
        "recent_misses": recent_misses,
        "recent_hit_rate": hit_rate(recent_hits, recent_misses),
    }


def summarize_slow_statements(entries: Iterable[tuple[str, float, str, float]], service: str) -> list[dict]:
    mine = [e for e in entries if e[0] == service][-MAX_SLOW_STATEMENTS:]
    return [{"duration_ms": ms, "statement": sql, "at": at} for _, ms, sql, at in reversed(mine)]


# --- publishing --------------------------------------------------------------------------------


class OpsSnapshotPublisher:
    """Collects and publishes this process's snapshot; `run` does it every `interval_s` until stopped.
    Nothing here may hurt the service: a failed snapshot is logged and tried again next interval."""

    def __init__(
        self,
        service: str,
        namespace: str,
        redis,
        probe: LockProbe,
        interval_s: float,
        measure_outbox: Callable[[], Awaitable[tuple[int, float]]] | None = None,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.service, self.namespace, self.redis, self.probe = service, namespace, redis, probe
        self.interval_s, self.measure_outbox = interval_s, measure_outbox
        self.instance = instance or default_instance()
        self.clock = clock
        self._cache_before: dict[str, int] | None = None

    @property
    def ttl_s(self) -> int:
        return max(5, int(3 * self.interval_s + 0.999))

    async def outbox_backlog(self) -> dict[str, Any] | None:
        """Unpublished outbox rows and the age of the oldest, measured now (the relay's own query:
        measured here too, the figure stays true when the relay is stopped or stuck)."""
        if self.measure_outbox is None:
            return None
        pending, oldest = await self.measure_outbox()
        return {"pending": pending, "oldest_age_s": round(oldest, 3) if pending else None}

    async def collect(self) -> dict[str, Any]:
        cache_now = dict(CACHE_STATS)
        snapshot = {
            "service": self.service,
            "instance": self.instance,
            "published_at": self.clock(),
            "interval_s": self.interval_s,
            "outbox": await self.outbox_backlog(),
            "cache": summarize_cache(cache_now, self._cache_before),
            "locks": summarize_locks(list(READINGS), self.service, self.probe.budget),
            "write_locks": write_lock_histogram(self.service),
            "slow_statements": summarize_slow_statements(list(SLOW_STATEMENTS), self.service),
        }
        self._cache_before = cache_now
        return snapshot

    async def publish(self) -> dict[str, Any]:
        snapshot = await self.collect()
        key = snapshot_key(self.namespace, self.service, self.instance)
        index = index_key(self.namespace)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(key, json.dumps(snapshot), ex=self.ttl_s)
        pipe.zadd(index, {key: snapshot["published_at"]})
        pipe.zremrangebyscore(index, "-inf", snapshot["published_at"] - self.ttl_s)  # processes long gone
        pipe.expire(index, self.ttl_s * 4)
        await pipe.execute()
        return snapshot

    async def withdraw(self) -> None:
        """On shutdown: this process's figures leave the dashboard at once."""
        key = snapshot_key(self.namespace, self.service, self.instance)
        try:
            await self.redis.delete(key)
            await self.redis.zrem(index_key(self.namespace), key)
        except (RedisError, OSError):
            pass

    async def run(self, stop: asyncio.Event) -> None:
        if self.interval_s <= 0:
            return
        try:
            while not stop.is_set():
                try:
                    await self.publish()
                except Exception as error:  # Redis or the database down, a timeout: try next interval
                    log.warning("operations snapshot not published", extra={"error": repr(error)[:300]})
                await pause(stop, self.interval_s)
        finally:
            await self.withdraw()


# --- reading (the gateway) ---------------------------------------------------------------------


async def read_snapshots(redis, namespace: str, now: float | None = None) -> list[dict[str, Any]]:
    """Every live snapshot, newest first. Keys that expired are dropped from the index on the way."""
    index = index_key(namespace)
    keys = [k.decode() if isinstance(k, bytes) else k for k in await redis.zrange(index, 0, -1)]
    if not keys:
        return []
    values = await redis.mget(keys)
    gone = [k for k, v in zip(keys, values, strict=True) if v is None]
    if gone:
        await redis.zrem(index, *gone)
    snapshots = []
    for value in values:
        if value is None:
            continue
        try:
            snapshots.append(json.loads(value))
        except ValueError:
            continue
    now = time.time() if now is None else now
    for s in snapshots:
        s["age_s"] = round(max(0.0, now - float(s.get("published_at", now))), 3)
    return sorted(snapshots, key=lambda s: -float(s.get("published_at", 0)))
