"""A statement slower than SLOW_STATEMENT_MS is logged (warning "slow statement") with its duration,
the operation that ran it and its text; one under the threshold is not. Real PostgreSQL: the slow
statement is a pg_sleep that cannot finish sooner than it asks."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from kit.config import ServiceSettings
from kit.context import current_operation
from kit.db import make_engine
from kit.provision import service_database_url


@pytest.fixture
def engine_with_threshold(infra, database):
    def build(threshold_ms: int):
        url = service_database_url(infra.admin_database_url, database, "availability")
        return make_engine(ServiceSettings(service_name="ops-slow", database_url=url, slow_statement_ms=threshold_ms))

    return build


async def run(engine, sql: str, operation: str) -> None:
    """Run one statement on its own connection as `operation`, then close the engine."""
    token = current_operation.set(operation)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    finally:
        current_operation.reset(token)
        await engine.dispose()


def slow_records(caplog) -> list[logging.LogRecord]:
    """This test's slow statements: in-process servers of other tests log theirs to the same logger."""
    return [
        r
        for r in caplog.records
        if r.name == "reserva.db" and r.getMessage() == "slow statement" and getattr(r, "operation", "") == "SlowThing"
    ]


async def test_a_statement_over_the_threshold_is_logged_with_its_duration_and_operation(engine_with_threshold, caplog):
    caplog.set_level(logging.WARNING, logger="reserva.db")
    await run(engine_with_threshold(50), "SELECT pg_sleep(0.3)", "SlowThing")

    [record] = slow_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.duration_ms >= 300
    assert record.operation == "SlowThing"
    assert "pg_sleep" in record.statement


async def test_the_same_statement_under_a_higher_threshold_is_not_logged(engine_with_threshold, caplog):
    caplog.set_level(logging.WARNING, logger="reserva.db")
    await run(engine_with_threshold(60_000), "SELECT pg_sleep(0.3)", "SlowThing")
    assert slow_records(caplog) == []
