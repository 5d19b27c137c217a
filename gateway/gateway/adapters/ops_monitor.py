"""Reads what the operator dashboard shows: pg_locks and pg_stat_activity of the platform's database
(the queries of `reserva locks`, kit.locks_cli), and the operations snapshots the processes publish
to Redis (kit.ops_snapshot).

The gateway asks PostgreSQL as its own role, `reserva_gateway`, which provisioning makes a member of
pg_monitor: without it, other roles' sessions show no state and no query. These are reads of the
server's statistics views, outside any transaction and any of the platform's tables, so they are not
units of work and the lock probe does not measure them."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.service_layer.ops import DatabaseActivity
from kit import locks_cli
from kit.errors import Unavailable
from kit.ops_snapshot import read_snapshots

log = logging.getLogger("reserva.gateway.ops")


class PostgresRedisOpsMonitor:
    def __init__(self, engine: AsyncEngine, redis, namespace: str):
        self.engine, self.redis, self.namespace = engine, redis, namespace

    async def database_activity(self) -> DatabaseActivity:
        try:
            async with self.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                conn = raw.driver_connection  # the asyncpg connection the kit's queries take
                database = await conn.fetchval("SELECT current_database()")
                visible = await conn.fetchval("SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')")
                capacity = await locks_cli.lock_capacity(conn)
                sessions = await locks_cli.backends(conn, database)
        except (asyncpg.PostgresError, DBAPIError, OSError) as error:
            log.warning("database activity unavailable", extra={"error": repr(error)[:300]})
            raise Unavailable(
                "the database's activity cannot be read now; retry later", reason="OPS_UNAVAILABLE"
            ) from error
        return DatabaseActivity(database, capacity, sessions, bool(visible))

    async def snapshots(self) -> list[dict[str, Any]] | None:
        """None when Redis does not answer: the live database figures are still shown."""
        try:
            return await read_snapshots(self.redis, self.namespace)
        except (RedisError, OSError) as error:
            log.warning("operations snapshots unavailable", extra={"error": repr(error)[:300]})
            return None
