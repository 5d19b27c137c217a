"""The foundation's promises on a real PostgreSQL: roles isolated per schema, migrations up and down
within the lock budget, connection timeouts set, and the lock probe measuring and refusing."""

import itertools
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from kit.config import ServiceSettings
from kit.db import SqlAlchemyUnitOfWork, make_engine, make_lock_probe, make_session_factory
from kit.errors import LockBudgetExceeded
from kit.lock_probe import READINGS
from kit.paths import SCHEMAS
from kit.provision import admin_dsn, service_database_url


async def test_each_service_role_is_refused_every_other_services_tables(infra, database):
    services = list(SCHEMAS)
    for reader, owner in itertools.permutations(services, 2):
        owner_schema = SCHEMAS[owner][0]
        dsn = service_database_url(infra.admin_database_url, database, reader).replace("+asyncpg", "")
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {owner_schema}.alembic_version")
        finally:
            await conn.close()


async def test_each_service_role_reads_its_own_schema(infra, database):
    for service, (schema, _, _) in SCHEMAS.items():
        dsn = service_database_url(infra.admin_database_url, database, service).replace("+asyncpg", "")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval(f"SELECT count(*) FROM {schema}.alembic_version") == 1
        finally:
            await conn.close()


async def test_migrations_go_from_empty_to_head_to_base_and_back_within_the_lock_budget(infra):
    from kit import migrations
    from kit.cli import migrate_all
    from kit.provision import drop_database

    name = f"reserva_mig_{uuid.uuid4().hex[:8]}"
    start = READINGS.mark()
    try:
        await migrate_all(infra.admin_database_url, name)
        readings = READINGS.since(start)
        assert readings, "the probe measured no migration"
        assert all(r.relation_locks <= 16 and r.advisory_locks <= 1 for r in readings)
        await migrate_all(infra.admin_database_url, name, down=True)
        conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, name))
        try:
            leftovers = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema = ANY($1::text[]) AND table_name <> 'alembic_version'",
                [s for s, _, _ in SCHEMAS.values()],
            )
        finally:
            await conn.close()
        assert leftovers == []
        for service in SCHEMAS:
            await migrations.upgrade(service, service_database_url(infra.admin_database_url, name, service))
    finally:
        await drop_database(infra.admin_database_url, name)


def _settings(infra, database, **kw) -> ServiceSettings:
    return ServiceSettings(
        service_name="booking",
        database_url=service_database_url(infra.admin_database_url, database, "booking"),
        lock_probe_strict=True,
        **kw,
    )


async def test_every_connection_sets_its_timeouts_and_application_name(infra, database):
    engine = make_engine(_settings(infra, database, statement_timeout_ms=4321, lock_timeout_ms=1234))
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
                        " current_setting('idle_in_transaction_session_timeout'),"
                        " current_setting('application_name')"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    assert row == ("4321ms", "1234ms", "10s", "booking")


async def test_the_probe_counts_own_locks_and_refuses_a_read_over_budget(infra, database):
    settings = _settings(infra, database)
    engine = make_engine(settings)
    factory, probe = make_session_factory(engine), make_lock_probe(settings)
    try:
        async with SqlAlchemyUnitOfWork(factory, probe) as uow:
            await uow.session.execute(text("SELECT count(*) FROM booking.alembic_version"))
        # The last reading of this unit of work (no operation named): in-process servers of other
        # tests keep measuring their workers' transactions meanwhile.
        ok = next(r for r in reversed(READINGS) if r.operation == "unknown")
        # alembic_version and its primary key index
        assert ok.total_locks == 2 and not ok.wrote

        # Touch many catalog relations at once: more than 10 locks in a read.
        with pytest.raises(LockBudgetExceeded):
            async with SqlAlchemyUnitOfWork(factory, probe) as uow:
                await uow.session.execute(
                    text("SELECT 1 FROM pg_class, pg_attribute, pg_type, pg_namespace, pg_proc WHERE false")
                )
    finally:
        await engine.dispose()


async def test_a_write_over_sixteen_relation_locks_is_refused_before_commit(infra, database):
    settings = _settings(infra, database)
    engine = make_engine(settings)
    factory, probe = make_session_factory(engine), make_lock_probe(settings)
    table = f"booking.probe_{uuid.uuid4().hex[:6]}"
    try:
        with pytest.raises(LockBudgetExceeded):
            async with SqlAlchemyUnitOfWork(factory, probe) as uow:
                await uow.session.execute(text(f"CREATE TABLE {table} (id int)"))
                for i in range(17):
                    await uow.session.execute(text(f"CREATE INDEX ON {table} (id) WHERE id > {i}"))
                await uow.commit()
        async with engine.connect() as conn:  # rolled back: nothing was created
            exists = (await conn.execute(text(f"SELECT to_regclass('{table}')"))).scalar()
        assert exists is None
    finally:
        await engine.dispose()
