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


def run_env(target_metadata, schema: str) -> None:
    """Body of every service's migrations/env.py."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    budget = LockBudget()

    def measure(ctx, step, heads, run_args):  # called inside each migration's transaction
        row = ctx.connection.exec_driver_sql(str(PROBE_SQL)).one()
        reading = LockReading(schema, f"migration:{step.up_revision_id or step.down_revision_ids}", *row)
        READINGS.append(reading)
        problem = budget.violation(reading)
        if problem:
            raise RuntimeError(
                f"migration {reading.operation} of {schema} exceeds the lock budget: {problem}"
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
