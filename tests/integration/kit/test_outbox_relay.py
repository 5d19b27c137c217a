"""The outbox relay on a real PostgreSQL and Redis: a commit that wrote outbox rows wakes it (it does
not wait for its poll), and while another session holds the relay's lock (another replica's relay)
it publishes nothing, then takes over soon after the lock is free."""

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import MetaData

from kit.cache import make_redis
from kit.db import SqlAlchemyUnitOfWork
from kit.lock_probe import READINGS
from kit.outbox import Outbox, OutboxMessage, OutboxRelay, outbox_table, stream_name
from kit.paths import SCHEMAS
from kit.provision import admin_dsn
from reserva.type.v1 import types_pb2

_, BOOKING_ROLE, _ = SCHEMAS["booking"]
NEVER_S = 600.0  # a poll interval no test waits for: only a wake-up can explain a prompt publication


@pytest.fixture
async def scratch_outbox(infra, database):
    """An outbox table of its own (the booking role's), so no other relay of the test run sees it."""
    name = f"outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        await admin.execute(f"CREATE TABLE booking.{name} (LIKE booking.outbox INCLUDING ALL)")
        await admin.execute(f"GRANT ALL ON booking.{name} TO {BOOKING_ROLE}")
        table = outbox_table(MetaData(), "booking").to_metadata(MetaData(), name=name)
        yield Outbox(table, f"relaytest_{name}"), admin
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS booking.{name}")
        await admin.close()


async def _eventually(check, timeout_s: float = 20.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_commit_wakes_the_relay_and_a_held_relay_lock_keeps_it_out(infra, engine_for, scratch_outbox):
    outbox, admin = scratch_outbox
    factory, probe = engine_for("booking", lock_probe_sample_rate=1.0, db_pool_size=2)
    redis = make_redis(infra.redis_url)
    namespace = f"relay_{uuid.uuid4().hex[:8]}"
    stream = stream_name(namespace, outbox.service)
    relay = OutboxRelay(outbox, factory, redis, namespace, probe, poll_interval_s=NEVER_S, backlog_interval_s=NEVER_S)
    stop = asyncio.Event()
    before = READINGS.mark()
    running = asyncio.create_task(relay.run(stop))

    async def commit_event() -> None:
        async with SqlAlchemyUnitOfWork(factory, probe, outbox) as uow:
            uow.events = [OutboxMessage("test.happened", "agg", types_pb2.Money(amount_minor=1, currency_code="EUR"))]
            await uow.commit()

    async def published(n: int):
        return await redis.xlen(stream) == n

    try:
        # Its first round found nothing: from here on it waits for a wake-up or its (long) poll.
        first_round = lambda: asyncio.sleep(  # noqa: E731
            0, result=any(r.operation == "outbox_relay" for r in READINGS.since(before))
        )
        assert await _eventually(first_round)
        await commit_event()
        assert await _eventually(lambda: published(1)), "the commit did not wake the relay"
        table = f"booking.{outbox.table.name}"

        async def all_marked():
            return await admin.fetchval(f"SELECT count(*) FROM {table} WHERE published_at IS NULL") == 0

        assert await _eventually(all_marked)

        # Another replica's relay holds the lock: this one publishes nothing, and says so.
        await admin.execute("SELECT pg_advisory_lock($1)", relay._lock_key)
        await commit_event()
        assert await relay.publish_batch() == 0 and relay._leader is False
        assert await redis.xlen(stream) == 1
        # Once the lock is free it looks again soon (not at its poll interval) and publishes the row.
        await admin.execute("SELECT pg_advisory_unlock($1)", relay._lock_key)
        assert await _eventually(lambda: published(2)), "the relay did not take over once the lock was free"
        assert relay._leader is True
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await redis.delete(stream)
        await redis.aclose()
