"""The transactional outbox: events are written in the same transaction as the state change and
published to a Redis Stream by a relay, in order, at least once. Consumers deduplicate by event id."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import Message
from opentelemetry import metrics, propagate
from opentelemetry.metrics import CallbackOptions, Observation
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kit import prototime
from kit.context import current_operation
from kit.db import SqlAlchemyUnitOfWork
from kit.lock_probe import LockProbe

log = logging.getLogger("reserva.outbox")
_meter = metrics.get_meter("reserva.kit.outbox")
_published = _meter.create_counter("reserva.outbox.published", unit="{event}")
_lag = _meter.create_histogram("reserva.outbox.lag", unit="s", description="commit to publish delay")

# The backlog each relay of this process measured last: service -> (unpublished rows, age in seconds
# of the oldest of them, 0 when none). Read by the two gauges below.
OUTBOX_BACKLOG: dict[str, tuple[int, float]] = {}


def _observe_pending(_options: CallbackOptions) -> list[Observation]:
    return [Observation(rows, {"service": service}) for service, (rows, _) in OUTBOX_BACKLOG.items()]


def _observe_oldest_age(_options: CallbackOptions) -> list[Observation]:
    return [Observation(age, {"service": service}) for service, (_, age) in OUTBOX_BACKLOG.items()]


_meter.create_observable_gauge(
    "reserva.outbox.pending", [_observe_pending], unit="{event}", description="outbox rows not yet published"
)
_meter.create_observable_gauge(
    "reserva.outbox.oldest_unpublished_age",
    [_observe_oldest_age],
    unit="s",
    description="age of the oldest outbox row not yet published (0: none waiting)",
)


@dataclass
class OutboxMessage:
    """An event to publish: `event_type` like "booking.confirmed", the payload a proto message."""

    event_type: str
    aggregate_id: str
    payload: Message
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def outbox_table(metadata: MetaData, schema: str) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("envelope", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        schema=schema,
    )


def stream_name(namespace: str, service: str) -> str:
    return f"{namespace}:events:{service}"


class Outbox:
    def __init__(self, table: Table, service: str):
        self.table, self.service = table, service
        # Set by every commit of this process that wrote outbox rows; the relay waits on it.
        self.commits = asyncio.Event()

    def committed(self) -> None:
        """A transaction of this process that wrote outbox rows has committed: wake the relay."""
        self.commits.set()

    def envelope(self, message: OutboxMessage) -> bytes:
        from google.protobuf import any_pb2

        from reserva.events.v1 import envelope_pb2

        payload = any_pb2.Any()
        payload.Pack(message.payload)
        occurred = prototime.timestamp(datetime.now(UTC))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return envelope_pb2.EventEnvelope(
            event_id=message.event_id,
            event_type=message.event_type,
            source_service=self.service,
            aggregate_id=message.aggregate_id,
            occurred_time=occurred,
            payload=payload,
            trace_context=carrier,
        ).SerializeToString()

    async def stage(self, session: AsyncSession, messages: list[OutboxMessage]) -> None:
        rows = [
            {
                "event_id": m.event_id,
                "event_type": m.event_type,
                "aggregate_id": m.aggregate_id,
                "envelope": self.envelope(m),
            }
            for m in messages
        ]
        await session.execute(insert(self.table), rows)


class OutboxRelay:
    """Moves committed outbox rows to the service's Redis Stream. One relay publishes at a time (a
    transaction-scoped advisory lock, one lock entry), so the stream keeps commit order."""

    def __init__(
        self,
        outbox: Outbox,
        session_factory: async_sessionmaker[AsyncSession],
        redis,
        namespace: str,
        probe: LockProbe,
        batch_size: int = 100,
        idle_sleep_s: float = 0.05,
        backlog_interval_s: float = 5.0,
        gather_s: float = 0.01,
        poll_interval_s: float = 1.0,
    ):
        """The relay wakes when a transaction of this process that wrote outbox rows commits
        (Outbox.committed), then waits `gather_s` before its batch so that one batch carries the
        events of several transactions under load; without a wake-up it looks every
        `poll_interval_s` (rows another process wrote: a replica whose relay was not the leader).
        `idle_sleep_s` is the first retry delay after a failure, doubled up to 2 s."""
        self.outbox, self.session_factory, self.redis = outbox, session_factory, redis
        self.stream = stream_name(namespace, outbox.service)
        self.probe, self.batch_size, self.idle_sleep_s = probe, batch_size, idle_sleep_s
        self.backlog_interval_s, self.gather_s, self.poll_interval_s = backlog_interval_s, gather_s, poll_interval_s
        self._lock_key = zlib.crc32(f"outbox:{outbox.table.fullname}".encode())
        self._leader = True  # whether the last batch got the relay's lock

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows went out (0 when idle, Redis down, or not leader)."""
        token = current_operation.set("outbox_relay")
        table = self.outbox.table
        try:
            # Plain SQL (kit.sql): the relay runs all the time a service is busy.
            async with SqlAlchemyUnitOfWork(self.session_factory, self.probe) as uow:
                db = await uow.driver()
                # The relay's lock and the batch in one round trip: the lock is tried once, the
                # batch read only if this relay got it; one row (leader, NULLs) when nothing waits.
                found = await db.fetch(
                    "WITH leader AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($2) AS got) "
                    "SELECT leader.got, b.id, b.envelope, b.created_at FROM leader LEFT JOIN LATERAL ("
                    f"  SELECT o.id, o.envelope, o.created_at FROM {table.schema}.{table.name} o"
                    "    WHERE leader.got AND o.published_at IS NULL"
                    "    ORDER BY o.id LIMIT $1 FOR UPDATE SKIP LOCKED) b ON true",
                    self.batch_size,
                    self._lock_key,
                )
                self._leader = bool(found[0]["got"])
                rows = [r for r in found if r["id"] is not None]
                if not rows:
                    await uow.commit()
                    return 0
                pipe = self.redis.pipeline(transaction=False)
                for row in rows:
                    pipe.xadd(self.stream, {"envelope": row["envelope"]}, maxlen=1_000_000, approximate=True)
                await pipe.execute()  # raises when Redis is down: the transaction rolls back, rows stay
                await db.execute(
                    f"UPDATE {table.schema}.{table.name} SET published_at = now() "
                    "WHERE id = ANY ($1::text[]::bigint[])",
                    [str(r["id"]) for r in rows],
                )
                await uow.commit()
            now = datetime.now(UTC)
            for row in rows:
                _lag.record((now - row["created_at"]).total_seconds(), {"service": self.outbox.service})
            _published.add(len(rows), {"service": self.outbox.service})
            return len(rows)
        finally:
            current_operation.reset(token)

    async def measure_backlog(self) -> tuple[int, float]:
        """Count the unpublished rows and the age of the oldest (the partial index of unpublished
        rows; one short read) for the gauges reserva.outbox.pending and .oldest_unpublished_age."""
        table = self.outbox.table
        token = current_operation.set("outbox_backlog")
        try:
            async with self.session_factory() as session, session.begin():
                rows, age = (
                    await session.execute(
                        select(
                            func.count(),
                            func.coalesce(func.extract("epoch", func.now() - func.min(table.c.created_at)), 0),
                        ).where(table.c.published_at.is_(None))
                    )
                ).one()
                await self.probe.check(session, "outbox_backlog")
        finally:
            current_operation.reset(token)
        OUTBOX_BACKLOG[self.outbox.service] = figures = (int(rows), max(0.0, float(age)))
        return figures

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.idle_sleep_s
        next_measure = 0.0
        woken = self.outbox.commits
        while not stop.is_set():
            if time.monotonic() >= next_measure:
                next_measure = time.monotonic() + self.backlog_interval_s
                try:
                    await self.measure_backlog()
                except Exception as error:  # the figures wait for the next interval; publishing goes on
                    log.warning("outbox backlog not measured", extra={"error": repr(error)})
            woken.clear()  # commits from here on wake the next round
            try:
                sent = await self.publish_batch()
                backoff = self.idle_sleep_s
                if sent == self.batch_size:
                    continue
                # Not the leader (another replica's relay is publishing): look again soon, since the
                # rows this process committed may have come after that relay's batch.
                wait = self.poll_interval_s if self._leader else self.idle_sleep_s
            except Exception as error:  # Redis or database down: keep the rows, try again later
                log.warning("outbox relay failed; will retry", extra={"error": repr(error)})
                backoff = min(backoff * 2, 2.0)
                await _first_of(stop.wait(), timeout=backoff)
                continue
            if not await _first_of(stop.wait(), woken.wait(), timeout=wait):
                continue  # the poll interval passed
            if not stop.is_set():
                await _first_of(stop.wait(), timeout=self.gather_s)  # gather the commits of a moment


async def _first_of(*waits, timeout: float) -> bool:
    """Wait until the first of `waits` completes or `timeout` passes; True if one completed."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for task in tasks:
            task.cancel()
