"""Alembic, one environment per service (its version table lives in its own schema). Migrations run
only through an explicit command (`reserva migrate`, or the Kubernetes Job), never at service start.
Each migration runs in its own transaction with a lock_timeout, and the lock probe measures each one
before it commits: a migration over the write budget fails."""

from __future__ import annotations

import asyncio
import logging

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from kit.lock_probe import PROBE_SQL, READINGS, LockBudget, LockReading
from kit.paths import SCHEMAS

log = logging.getLogger("reserva.migrations")
MIGRATION_LOCK_TIMEOUT_MS = 5000
# The migration tool's own catalog lookups (weak AccessShareLocks on pg_catalog, always fast-path) are
# not the migration's doing; everything else (new tables, indexes, sequences, TOAST, the version
# table) counts against the write budget.
MIGRATION_PROBE_SQL = str(PROBE_SQL).replace(
    "AND NOT (locktype = 'relation' AND relation = 'pg_catalog.pg_locks'::regclass)",
    "AND NOT (locktype = 'relation' AND relation IN "
    "(SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = 'pg_catalog'::regnamespace))",
)


def run_env(target_metadata, schema: str) -> None:
    """Body of every service's migrations/env.py."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    budget = LockBudget()

    def measure(ctx, step, heads, run_args):  # called inside each migration's transaction
        row = ctx.connection.exec_driver_sql(MIGRATION_PROBE_SQL).one()
        reading = LockReading(schema, f"migration:{step.up_revision_id or step.down_revision_ids}", *row)
        READINGS.append(reading)
        problem = budget.violation(reading)
        if problem:
            raise RuntimeError(
                f"migration {reading.operation} of {schema} exceeds the lock budget: {problem}. Split it: "
                "one new table per migration (a table with a sequence, TOAST and three indexes takes ~12)"
            )

    def do_run(connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            transaction_per_migration=True,
            on_version_apply=measure,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def ensure_version_table(connection) -> None:
        # Alembic would create its version table inside the first migration's transaction, adding its
        # locks to that migration's; create it on its own first (same shape as Alembic's).
        async with connection.begin():
            await connection.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {schema}.alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )

    async def run() -> None:
        engine = create_async_engine(
            url,
            poolclass=pool.NullPool,
            connect_args={
                "server_settings": {
                    "lock_timeout": str(MIGRATION_LOCK_TIMEOUT_MS),
                    "application_name": f"{schema}-migrations",
                }
            },
        )
        async with engine.connect() as connection:
            await ensure_version_table(connection)
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run())


def alembic_config(service: str, url: str) -> Config:
    _, _, folder = SCHEMAS[service]
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(service: str, url: str, revision: str = "head") -> None:
    # Alembic's env runs its own event loop: keep it off ours.
    await asyncio.to_thread(command.upgrade, alembic_config(service, url), revision)


async def downgrade(service: str, url: str, revision: str = "base") -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(service, url), revision)


def create_outbox_table(schema: str) -> None:
    """Migration step shared by every service: its transactional outbox (see kit.outbox)."""
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects import postgresql

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", postgresql.UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("aggregate_id", sa.String(100), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], schema=schema, postgresql_where=sa.text("published_at IS NULL")
    )
