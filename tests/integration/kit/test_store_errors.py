"""Infrastructure failures become UNAVAILABLE (retry later), never INTERNAL: a refused connection,
a terminated backend, too many connections; a value PostgreSQL cannot store is INVALID_ARGUMENT."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from kit.errors import ErrorKind
from kit.interceptors import as_domain_error
from kit.provision import admin_dsn


async def _error_of(coro) -> BaseException:
    try:
        await coro
    except Exception as error:  # the error under test
        return error
    raise AssertionError("expected an error")


async def test_a_refused_database_connection_is_unavailable():
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")

    async def use():
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    error = await _error_of(use())
    await engine.dispose()
    assert as_domain_error(error).kind is ErrorKind.UNAVAILABLE


async def test_a_backend_terminated_mid_transaction_is_unavailable(infra, database):
    url = admin_dsn(infra.admin_database_url, database).replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url)
    killer = create_async_engine(url)

    async def use():
        async with engine.begin() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            async with killer.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            await asyncio.sleep(0.1)
            await conn.execute(text("SELECT 1"))

    error = await _error_of(use())
    await engine.dispose()
    await killer.dispose()
    mapped = as_domain_error(error)
    assert mapped is not None and mapped.kind is ErrorKind.UNAVAILABLE, repr(error)


@pytest.mark.parametrize("value", ["nul\x00byte"])
async def test_a_value_postgres_cannot_store_is_invalid_argument(infra, database, value):
    url = admin_dsn(infra.admin_database_url, database).replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url)

    async def use():
        async with engine.connect() as conn:
            await conn.execute(text("SELECT CAST(:v AS text)"), {"v": value})

    error = await _error_of(use())
    await engine.dispose()
    assert as_domain_error(error).kind is ErrorKind.INVALID_ARGUMENT
