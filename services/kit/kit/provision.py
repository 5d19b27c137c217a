"""Provisioning: the database, the btree_gist extension, and for each service one schema owned by
one login role that has rights on that schema alone (it cannot even read another service's tables)."""

from __future__ import annotations

import logging
import os

import asyncpg
from sqlalchemy.engine import make_url

from kit.paths import SCHEMAS

log = logging.getLogger("reserva.provision")


def _dsn(url: str, database: str | None = None, user: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    if user:
        parsed = parsed.set(username=user, password=os.environ.get(f"RESERVA_{user.upper()}_PASSWORD"))
    return parsed.render_as_string(hide_password=False)


def service_database_url(admin_url: str, database: str, service: str) -> str:
    """The SQLAlchemy URL a service uses: its own role, the platform's database."""
    _, role, _ = SCHEMAS[service]
    return _dsn(admin_url, database, role).replace("postgresql://", "postgresql+asyncpg://", 1)


def admin_dsn(admin_url: str, database: str | None = None) -> str:
    return _dsn(admin_url, database)


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=10)


async def create_database(admin_url: str, database: str) -> None:
    conn = await _connect(admin_dsn(admin_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{database}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


async def drop_database(admin_url: str, database: str) -> None:
    conn = await _connect(admin_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def provision(admin_url: str, database: str) -> None:
    """Idempotent: safe to run on every `reserva up` and by concurrent test runs."""
    await create_database(admin_url, database)
    conn = await _connect(admin_dsn(admin_url, database))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        for schema, role, _ in SCHEMAS.values():
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                try:
                    await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
                except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                    pass  # another run created it meanwhile; roles are cluster-wide
            password = os.environ.get(f"RESERVA_{role.upper()}_PASSWORD")
            if password:
                await conn.execute(f"ALTER ROLE {role} PASSWORD '{password.replace(chr(39), chr(39) * 2)}'")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
            await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
        await grant_monitoring(conn, MONITORING_ROLE)
    finally:
        await conn.close()


# The gateway serves the operator dashboard: it reads pg_locks and pg_stat_activity, and needs
# pg_monitor to see the state and query of the services' sessions (otherwise "insufficient privilege").
MONITORING_ROLE = SCHEMAS["gateway"][1]


async def grant_monitoring(conn: asyncpg.Connection, role: str) -> bool:
    """GRANT pg_monitor once (roles are cluster-wide; concurrent runs may race). A database whose
    administrator may not grant it still works: the dashboard then shows fewer details."""
    member = "SELECT pg_has_role($1, 'pg_monitor', 'MEMBER')"
    if await conn.fetchval(member, role):
        return True
    try:
        await conn.execute(f"GRANT pg_monitor TO {role}")
    except asyncpg.InsufficientPrivilegeError:
        log.warning("could not grant pg_monitor to %s: the operator dashboard shows fewer details", role)
        return False
    except asyncpg.PostgresError:
        pass  # another run granted it meanwhile ("tuple concurrently updated")
    return bool(await conn.fetchval(member, role))
