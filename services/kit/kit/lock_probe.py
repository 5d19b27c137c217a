"""The lock probe: counts the pg_locks rows held by the transaction's own backend just before it
ends, and enforces the budget (reads 10 locks; writes 16 relation locks + 1 advisory lock).

Why 16: before PostgreSQL 18 a backend has 16 fast-path slots for weak relation locks; past them,
locks go to the shared lock table whose size is max_locks_per_transaction x max_connections, the
table that runs out ("out of shared memory") on managed databases stuck at the default of 64."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from opentelemetry import metrics
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from kit.errors import LockBudgetExceeded

log = logging.getLogger("reserva.locks")
_meter = metrics.get_meter("reserva.kit.lock_probe")
_locks_histogram = _meter.create_histogram(
    "reserva.db.locks_per_transaction", unit="{lock}", description="pg_locks rows held before commit"
)

# The probe's own query locks the pg_locks view; that row is not the transaction's doing.
PROBE_TEXT = """
    SELECT count(*) FILTER (WHERE locktype = 'relation')                 AS relation_locks,
           count(*) FILTER (WHERE locktype = 'advisory')                 AS advisory_locks,
           count(*) FILTER (WHERE NOT fastpath)                          AS slow_path_locks,
           count(*)                                                      AS total_locks,
           -- A write: it wrote (has a transaction id) or took a lock that announces a write (a row
           -- lock, RowExclusive on a table, an advisory lock), even if it ended up refusing.
           pg_current_xact_id_if_assigned() IS NOT NULL
             OR coalesce(bool_or(mode <> 'AccessShareLock'), false)     AS wrote
      FROM pg_locks
     WHERE pid = pg_backend_pid()
       AND locktype NOT IN ('virtualxid', 'transactionid')
       AND NOT (locktype = 'relation' AND relation = 'pg_catalog.pg_locks'::regclass)
    """
PROBE_SQL = text(PROBE_TEXT)
NEAR_LIMIT_WARNING_EVERY_S = 60.0


@dataclass(frozen=True)
class LockReading:
    service: str
    operation: str
    relation_locks: int
    advisory_locks: int
    slow_path_locks: int
    total_locks: int
    wrote: bool

    @property
    def kind(self) -> str:
        return "write" if self.wrote else "read"


@dataclass
class LockBudget:
    read_total: int = 10
    write_relations: int = 16
    write_advisory: int = 1

    def violation(self, r: LockReading) -> str | None:
        if r.wrote:
            if r.relation_locks > self.write_relations:
                return f"{r.relation_locks} relation locks > {self.write_relations}"
            if r.advisory_locks > self.write_advisory:
                return f"{r.advisory_locks} advisory locks > {self.write_advisory}"
            return None
        if r.total_locks > self.read_total:
            return f"{r.total_locks} locks > {self.read_total} for a read"
        return None

    def near_limit(self, r: LockReading) -> bool:
        limit = self.write_relations if r.wrote else self.read_total
        used = r.relation_locks if r.wrote else r.total_locks
        return used >= 0.8 * limit


@dataclass
class OperationFigures:
    transactions: int = 0
    max_total: int = 0
    max_relation: int = 0
    max_advisory: int = 0
    # Write transactions counted by their relation + advisory locks: a histogram, so that the
    # maximum and mean of a stretch of time come from the difference of two readings of it (the
    # benchmarks read it from the operations snapshots of processes they do not run in).
    write_locks: Counter = field(default_factory=Counter)

    def add(self, r: LockReading) -> None:
        self.transactions += 1
        self.max_total = max(self.max_total, r.total_locks)
        self.max_relation = max(self.max_relation, r.relation_locks)
        self.max_advisory = max(self.max_advisory, r.advisory_locks)
        if r.wrote:
            self.write_locks[r.relation_locks + r.advisory_locks] += 1


class RecentReadings:
    """The latest readings of this process (bounded), with a running count: `since(mark())` gives
    what came after the mark even once the log is full and drops its oldest entries (a length taken
    before, as a start index, would then point past the end). `per_operation` keeps, for every
    reading ever taken, the count and maxima per (service, operation, kind)."""

    def __init__(self, maxlen: int):
        self._items: deque[LockReading] = deque(maxlen=maxlen)
        self._appended = 0
        self.per_operation: dict[tuple[str, str, str], OperationFigures] = {}

    def append(self, reading: LockReading) -> None:
        self._items.append(reading)
        self._appended += 1
        key = (reading.service, reading.operation, reading.kind)
        figures = self.per_operation.get(key)
        if figures is None:
            figures = self.per_operation[key] = OperationFigures()
        figures.add(reading)

    def mark(self) -> int:
        return self._appended

    def since(self, mark: int) -> list[LockReading]:
        newer = min(self._appended - mark, len(self._items))
        return list(self._items)[len(self._items) - newer :] if newer > 0 else []

    def clear(self) -> None:
        self._items.clear()

    def __iter__(self):
        return iter(self._items)

    def __reversed__(self):
        return reversed(self._items)

    def __len__(self) -> int:
        return len(self._items)


# Recent readings of this process, for tests and the operator dashboard.
READINGS = RecentReadings(maxlen=10_000)


class LockProbe:
    """`sample_rate` < 1 (production only): measure that fraction of the transactions. Strict mode
    (tests) ignores it and measures every transaction."""

    def __init__(
        self, service: str, budget: LockBudget, enabled: bool = True, strict: bool = False, sample_rate: float = 1.0
    ):
        self.service, self.budget, self.enabled, self.strict = service, budget, enabled, strict
        self.sample_rate = sample_rate
        self._warned: dict[str, float] = {}

    def _sampled(self) -> bool:
        if not self.enabled:
            return False
        return self.strict or self.sample_rate >= 1.0 or random.random() < self.sample_rate

    def will_measure(self) -> bool:
        """Decide now whether the transaction about to start is measured (a unit of work that would
        skip BEGIN asks first); pass the answer to `check_driver(sampled=...)` later."""
        return self._sampled()

    async def check(self, conn: AsyncSession | AsyncConnection, operation: str) -> LockReading | None:
        """Measure the open transaction; raise LockBudgetExceeded in strict mode when over budget."""
        if not self._sampled():
            return None
        return self._judge(LockReading(self.service, operation, *(await conn.execute(PROBE_SQL)).one()))

    async def check_driver(self, driver, operation: str, sampled: bool | None = None) -> LockReading | None:
        """The same on a unit of work's plain-SQL connection (kit.sql.Driver); `sampled`: the
        decision will_measure() took earlier for this transaction, if it took one."""
        if not (self._sampled() if sampled is None else sampled):
            return None
        return self._judge(LockReading(self.service, operation, *(await driver.fetchrow(PROBE_TEXT))))

    def _judge(self, reading: LockReading) -> LockReading:
        READINGS.append(reading)
        operation = reading.operation
        _locks_histogram.record(
            reading.total_locks, {"service": self.service, "operation": operation, "kind": reading.kind}
        )
        problem = self.budget.violation(reading)
        if problem:
            log.error("lock budget exceeded", extra={"reading": reading.__dict__, "problem": problem})
            if self.strict:
                raise LockBudgetExceeded(f"{self.service}.{operation}: {problem}")
        elif self.budget.near_limit(reading):
            # Some operations sit near the budget by design (HoldSlots: 15 of 16); say so once a
            # minute per operation, not on every call.
            now = time.monotonic()
            if now - self._warned.get(operation, -NEAR_LIMIT_WARNING_EVERY_S) >= NEAR_LIMIT_WARNING_EVERY_S:
                self._warned[operation] = now
                log.warning("lock usage within 80% of budget", extra={"reading": reading.__dict__})
        return reading
