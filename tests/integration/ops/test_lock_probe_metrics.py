"""The lock probe's figures leave the process as metrics (histogram reserva.db.locks_per_transaction
per service, operation and kind), and an operation within 80% of its budget logs a warning."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import text

from kit.config import ServiceSettings
from kit.db import make_engine, make_session_factory
from kit.errors import LockBudgetExceeded
from kit.lock_probe import LockBudget, LockProbe
from kit.paths import REPO_ROOT
from kit.provision import service_database_url

# Run in a fresh interpreter: the global MeterProvider can be set once per process, and services
# started by other tests of this process install theirs without a reader a test could use.
EXPORT_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    from sqlalchemy import text
    from kit.config import ServiceSettings
    from kit.context import current_operation
    from kit.db import SqlAlchemyUnitOfWork, make_engine, make_lock_probe, make_session_factory
    from kit.lock_probe import READINGS

    async def main():
        settings = ServiceSettings(service_name="ops-metrics", database_url=os.environ["PROBE_DATABASE_URL"])
        engine = make_engine(settings)
        sessions, probe = make_session_factory(engine), make_lock_probe(settings)
        current_operation.set("GetThing")
        async with SqlAlchemyUnitOfWork(sessions, probe) as uow:  # read-only: probed on exit
            await uow.session.execute(text("SELECT count(*) FROM pg_catalog.pg_namespace"))
        current_operation.set("CreateThing")
        async with SqlAlchemyUnitOfWork(sessions, probe) as uow:
            # A transaction that has an id (as if it wrote) and reads a catalog table.
            await uow.session.execute(text("SELECT pg_current_xact_id(), (SELECT count(*) FROM pg_catalog.pg_class)"))
            await uow.commit()
        await engine.dispose()
        points = [
            {"attributes": dict(p.attributes), "count": p.count, "sum": p.sum}
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "reserva.db.locks_per_transaction"
            for p in m.data.data_points
        ]
        print(json.dumps({"readings": [r.__dict__ for r in READINGS], "points": points}))

    asyncio.run(main())
    """
)


def test_each_probed_transaction_is_recorded_in_the_locks_per_transaction_histogram(infra, database):
    env = {
        **os.environ,
        "PROBE_DATABASE_URL": service_database_url(infra.admin_database_url, database, "availability"),
    }
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout.strip().splitlines()[-1])
    readings = {r["operation"]: r for r in exported["readings"]}
    points = {p["attributes"]["operation"]: p for p in exported["points"]}
    assert points["GetThing"]["attributes"] == {"service": "ops-metrics", "operation": "GetThing", "kind": "read"}
    assert points["CreateThing"]["attributes"]["kind"] == "write"
    for operation in ("GetThing", "CreateThing"):
        assert points[operation]["count"] == 1
        assert points[operation]["sum"] == readings[operation]["total_locks"] > 0


@pytest.fixture
async def session(infra, database):
    settings = ServiceSettings(
        service_name="ops-probe", database_url=service_database_url(infra.admin_database_url, database, "availability")
    )
    engine = make_engine(settings)
    async with make_session_factory(engine)() as session:
        await session.execute(text("SELECT count(*) FROM pg_catalog.pg_class"))
        yield session
        await session.rollback()
    await engine.dispose()


async def test_a_read_within_80_percent_of_its_budget_logs_a_warning_and_one_far_below_does_not(session, caplog):
    measured = (await LockProbe("ops-probe", LockBudget(read_total=1000)).check(session, "Measure")).total_locks
    caplog.set_level(logging.DEBUG, logger="reserva.locks")

    await LockProbe("ops-probe", LockBudget(read_total=measured)).check(session, "AtTheLimit")
    await LockProbe("ops-probe", LockBudget(read_total=measured * 2 + 10)).check(session, "FarBelow")

    # Only this probe's: in-process servers of other tests keep measuring their workers meanwhile.
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and getattr(r, "reading", {}).get("service") == "ops-probe"
    ]
    assert [r.getMessage() for r in warnings] == ["lock usage within 80% of budget"]
    assert warnings[0].reading["operation"] == "AtTheLimit"
    assert warnings[0].reading["total_locks"] == measured


async def test_a_strict_probe_refuses_a_read_over_its_budget(session):
    measured = (await LockProbe("ops-probe", LockBudget(read_total=1000)).check(session, "Measure")).total_locks
    with pytest.raises(LockBudgetExceeded):
        await LockProbe("ops-probe", LockBudget(read_total=measured - 1), strict=True).check(session, "Over")
