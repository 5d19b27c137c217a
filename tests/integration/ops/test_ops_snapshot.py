"""Operations snapshots on the real PostgreSQL and Redis: a process's snapshot tells its outbox
backlog (the relay's measurement, as the service's own role), its cache hits and misses, the lock probe's figures per
operation and its slow statements; it expires with the process, leaves on shutdown, and a snapshot
that cannot be published never stops the worker.

The outbox here is a private table shaped like booking's (`LIKE booking.outbox INCLUDING ALL`), and
the service name is unique per test: the in-process servers of other tests publish in parallel."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
from sqlalchemy import MetaData, select

from booking.config import BookingSettings
from kit.cache import Cache, make_redis
from kit.db import make_engine, make_lock_probe, make_session_factory
from kit.ops_snapshot import OpsSnapshotPublisher, index_key, read_snapshots, snapshot_key
from kit.outbox import Outbox, OutboxRelay, outbox_table
from kit.provision import service_database_url


async def eventually(check, attempts: int = 200, pause_s: float = 0.05):
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(pause_s)
    raise AssertionError("condition never became true")


@pytest.fixture
def service() -> str:
    return f"ops-it-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace(redis_namespace) -> str:
    return f"{redis_namespace}:{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def redis(infra):
    client = make_redis(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def booking_role(infra, database, service, settings_for):
    """An engine, session factory and strict probe as the booking role, named `service`, logging
    every statement as slow; and a private outbox-shaped table in the booking schema."""
    settings = settings_for("booking", BookingSettings, service_name=service, slow_statement_ms=0)
    name = f"ops_outbox_{uuid.uuid4().hex[:8]}"
    dsn = service_database_url(infra.admin_database_url, database, "booking").replace("+asyncpg", "")
    owner = await asyncpg.connect(dsn)
    await owner.execute(f"CREATE TABLE booking.{name} (LIKE booking.outbox INCLUDING ALL)")
    engine = make_engine(settings)
    table = outbox_table(MetaData(), "booking").to_metadata(MetaData(), name=name)
    yield make_session_factory(engine), make_lock_probe(settings), table, owner
    await engine.dispose()
    await owner.execute(f"DROP TABLE booking.{name}")
    await owner.close()


async def _stage(owner: asyncpg.Connection, table: str, age_s: int, published: bool = False) -> None:
    await owner.execute(
        f"INSERT INTO {table} (event_id, event_type, aggregate_id, envelope, created_at, published_at) "
        "VALUES (gen_random_uuid(), 'test.happened', 'a1', '\\x00', now() - make_interval(secs => $1), "
        "CASE WHEN $2 THEN now() END)",
        age_s,
        published,
    )


async def test_a_snapshot_tells_the_outbox_backlog_cache_hits_lock_figures_and_slow_statements(
    booking_role, service, namespace, redis
):
    session_factory, probe, table, owner = booking_role
    await _stage(owner, table.fullname, 30)
    await _stage(owner, table.fullname, 5)
    await _stage(owner, table.fullname, 60, published=True)
    backlog = OutboxRelay(Outbox(table, service), session_factory, redis, namespace, probe).measure_backlog
    publisher = OpsSnapshotPublisher(service, namespace, redis, probe, 1.0, backlog, instance="i1")
    await publisher.publish()  # the next snapshot's cache figures cover only what happens below

    cache = Cache(redis, namespace, "ops-it")
    await cache.set("present", b"1")
    assert await cache.get("present") == b"1"
    assert await cache.get("absent") is None
    async with session_factory() as session, session.begin():
        await session.execute(select(table.c.id).limit(1))
        await probe.check(session, "ReadSomething")
    await publisher.publish()

    [seen] = [s for s in await read_snapshots(redis, namespace) if s["service"] == service]
    assert seen["instance"] == "i1" and 0 <= seen["age_s"] < 60
    assert seen["outbox"]["pending"] == 2
    assert 30 <= seen["outbox"]["oldest_age_s"] < 600
    assert seen["cache"]["recent_hits"] >= 1 and seen["cache"]["recent_misses"] >= 1
    assert seen["cache"]["hits"] >= seen["cache"]["recent_hits"]
    operations = {(o["operation"], o["kind"]): o for o in seen["locks"]["operations"]}
    assert set(operations) == {("ReadSomething", "read"), ("outbox_backlog", "read")}
    assert operations[("outbox_backlog", "read")]["transactions"] == 2
    assert 1 <= operations[("ReadSomething", "read")]["max_locks"] <= 10
    assert 1 <= operations[("outbox_backlog", "read")]["max_locks"] <= 10  # the outbox, its indexes
    assert seen["locks"]["transactions"] == 3 and seen["locks"]["over_budget"] == 0
    assert seen["locks"]["budget"] == {"read": 10, "write_relations": 16, "write_advisory": 1}
    assert any(table.name in s["statement"] for s in seen["slow_statements"])
    assert 0 < await redis.ttl(snapshot_key(namespace, service, "i1")) <= publisher.ttl_s


async def test_a_process_without_outbox_reports_none_and_a_stopped_one_leaves_at_once(
    booking_role, service, namespace, redis
):
    _, probe, _, _ = booking_role
    publisher = OpsSnapshotPublisher(service, namespace, redis, probe, 0.05, instance="i2")
    stop = asyncio.Event()
    worker = asyncio.create_task(publisher.run(stop))

    async def mine():
        return [s for s in await read_snapshots(redis, namespace) if s["service"] == service]

    [seen] = await eventually(mine)
    assert seen["outbox"] is None
    stop.set()
    await asyncio.wait_for(worker, 10)
    assert await mine() == []
    assert await redis.zscore(index_key(namespace), snapshot_key(namespace, service, "i2")) is None


async def test_expired_snapshots_are_dropped_from_the_index(namespace, redis):
    gone = snapshot_key(namespace, "payments", "long-gone")
    await redis.zadd(index_key(namespace), {gone: time.time() - 3600})
    assert await read_snapshots(redis, namespace) == []
    assert await redis.zscore(index_key(namespace), gone) is None


async def test_a_snapshot_that_cannot_be_published_does_not_stop_the_worker(booking_role, service):
    session_factory, probe, table, _ = booking_role
    down = make_redis("redis://127.0.0.1:9/0", timeout_s=0.2)  # nothing listens on the discard port
    backlog = OutboxRelay(Outbox(table, service), session_factory, down, "ns", probe).measure_backlog
    publisher = OpsSnapshotPublisher(service, "ns", down, probe, 0.05, backlog)
    attempts = 0
    publish = publisher.publish

    async def counted():
        nonlocal attempts
        attempts += 1
        return await publish()

    publisher.publish = counted
    stop = asyncio.Event()
    worker = asyncio.create_task(publisher.run(stop))
    for _ in range(200):
        if attempts >= 3:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(worker, 10)  # the loop survived every failure and ended when told
    assert attempts >= 3
    await down.aclose()
