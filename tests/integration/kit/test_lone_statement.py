"""A unit of work declared as one lone statement, on a real PostgreSQL: sent without BEGIN/COMMIT
(PostgreSQL commits it when it ends, all or nothing), refused a second statement or events, and an
ordinary measured transaction whenever the lock probe samples it."""

import uuid

import asyncpg
import pytest

from kit.config import ServiceSettings
from kit.db import SqlAlchemyUnitOfWork, make_engine, make_lock_probe, make_session_factory
from kit.lock_probe import READINGS
from kit.paths import SCHEMAS
from kit.provision import admin_dsn, service_database_url

_, BOOKING_ROLE, _ = SCHEMAS["booking"]


@pytest.fixture
async def table(infra, database):
    """A scratch table in the booking schema, writable by the booking role."""
    name = f"booking.lone_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        await conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, note text)")
        await conn.execute(f"GRANT ALL ON {name} TO {BOOKING_ROLE}")
        yield name, conn
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {name}")
        await conn.close()


def _factory(infra, database, strict: bool):
    settings = ServiceSettings(
        service_name="booking",
        database_url=service_database_url(infra.admin_database_url, database, "booking"),
        lock_probe_strict=strict,
        lock_probe_sample_rate=0.0,
        db_pool_size=1,
        db_max_overflow=0,
    )
    engine = make_engine(settings)
    return engine, make_session_factory(engine), make_lock_probe(settings)


async def test_a_lone_statement_commits_when_it_ends_without_a_transaction_block(infra, database, table):
    name, admin = table
    engine, factory, probe = _factory(infra, database, strict=False)
    try:
        async with SqlAlchemyUnitOfWork(factory, probe) as uow:
            uow.lone_statement()
            db = await uow.driver()
            await db.execute(f"INSERT INTO {name} VALUES (1, 'lone')")
            # No transaction block is open, and another session already sees the row.
            assert not db._conn.is_in_transaction()
            assert await admin.fetchval(f"SELECT note FROM {name} WHERE id = 1") == "lone"
            await uow.commit()
        # The pooled connection went back clean and serves an ordinary transaction next.
        async with SqlAlchemyUnitOfWork(factory, probe) as uow:
            db = await uow.driver()
            await db.execute(f"INSERT INTO {name} VALUES (2, 'ordinary')")
            assert db._conn.is_in_transaction()
            await uow.commit()
        assert await admin.fetchval(f"SELECT count(*) FROM {name}") == 2
    finally:
        await engine.dispose()


async def test_a_failing_lone_statement_writes_nothing(infra, database, table):
    name, admin = table
    engine, factory, probe = _factory(infra, database, strict=False)
    try:
        with pytest.raises(Exception, match="division by zero"):
            async with SqlAlchemyUnitOfWork(factory, probe) as uow:
                uow.lone_statement()
                db = await uow.driver()
                # The first row is written before the error: the statement is still all or nothing.
                await db.execute(f"INSERT INTO {name} SELECT g, (1 / (2 - g))::text FROM generate_series(1, 2) g")
        assert await admin.fetchval(f"SELECT count(*) FROM {name}") == 0
    finally:
        await engine.dispose()


async def test_a_second_statement_or_an_event_is_refused(infra, database, table):
    name, admin = table
    engine, factory, probe = _factory(infra, database, strict=False)
    try:
        with pytest.raises(RuntimeError, match="second statement"):
            async with SqlAlchemyUnitOfWork(factory, probe) as uow:
                uow.lone_statement()
                db = await uow.driver()
                await db.execute(f"INSERT INTO {name} VALUES (1, 'first')")
                await db.execute(f"INSERT INTO {name} VALUES (2, 'second')")
        assert await admin.fetchval(f"SELECT array_agg(id) FROM {name}") == [1]
        with pytest.raises(RuntimeError, match="cannot stage events"):
            async with SqlAlchemyUnitOfWork(factory, probe) as uow:
                uow.lone_statement()
                await (await uow.driver()).execute(f"INSERT INTO {name} VALUES (3, 'x')")
                uow.events.append(object())
                await uow.commit()
    finally:
        await engine.dispose()


async def test_a_measured_lone_statement_is_an_ordinary_transaction(infra, database, table):
    name, admin = table
    engine, factory, probe = _factory(infra, database, strict=True)  # strict: every one measured
    start = READINGS.mark()
    try:
        async with SqlAlchemyUnitOfWork(factory, probe) as uow:
            uow.lone_statement()
            db = await uow.driver()
            await db.execute(f"INSERT INTO {name} VALUES (1, 'measured')")
            assert db._conn.is_in_transaction()
            assert await admin.fetchval(f"SELECT count(*) FROM {name}") == 0  # not committed yet
            await uow.commit()
        assert await admin.fetchval(f"SELECT count(*) FROM {name}") == 1
        mine = [r for r in READINGS.since(start) if r.service == "booking" and r.wrote]
        assert mine and mine[-1].relation_locks >= 1
    finally:
        await engine.dispose()


@pytest.mark.parametrize("changed", [True, False])
async def test_a_lone_statement_writes_its_events_exactly_when_its_change_happens(infra, database, table, changed):
    """kit.sql.with_events: the unit of work's events as a CTE of the change's own statement, written
    only if the change is (its condition), in the one statement sent without BEGIN/COMMIT."""
    from google.protobuf import wrappers_pb2

    from booking.adapters.orm import outbox as booking_outbox
    from kit.outbox import Outbox, OutboxMessage
    from kit.sql import OUTBOX_CTE, with_events

    name, admin = table
    engine, factory, probe = _factory(infra, database, strict=False)
    message = OutboxMessage("probe.happened", "p1", wrappers_pb2.StringValue(value="x"))
    try:
        async with SqlAlchemyUnitOfWork(factory, probe, Outbox(booking_outbox, "booking")) as uow:
            uow.lone_statement()
            uow.events.append(message)
            sql = f"WITH added AS (INSERT INTO {name} SELECT 1, 'x' WHERE $1 RETURNING 1){OUTBOX_CTE} SELECT 1"
            sql, args = with_events(sql, [changed], uow.events_in_statement, "EXISTS (SELECT 1 FROM added)")
            await (await uow.driver()).execute(sql, *args)
            await uow.commit()
        written = "SELECT count(*) FROM booking.outbox WHERE event_id = $1::uuid"
        assert await admin.fetchval(f"SELECT count(*) FROM {name}") == int(changed)
        assert await admin.fetchval(written, message.event_id) == int(changed)
    finally:
        await engine.dispose()


async def test_a_connection_handed_back_mid_transaction_does_not_swallow_a_lone_statement(infra, database, table):
    """A pooled connection left inside a transaction (its user cancelled while ending it): the next
    unit of work ends that transaction first, so a lone statement on it really commits."""
    from sqlalchemy.util import greenlet_spawn

    name, admin = table
    engine, factory, probe = _factory(infra, database, strict=False)  # a pool of one connection
    try:
        pooled = await engine.raw_connection()
        await pooled.driver_connection.execute("BEGIN")  # behind the adapter's back, never ended
        await greenlet_spawn(pooled.close)
        async with SqlAlchemyUnitOfWork(factory, probe) as uow:
            uow.lone_statement()
            await (await uow.driver()).execute(f"INSERT INTO {name} VALUES (1, 'lone')")
            await uow.commit()
        assert await admin.fetchval(f"SELECT count(*) FROM {name}") == 1
    finally:
        await engine.dispose()
