"""Test harness shared by every layer. Each test process (each xdist worker) gets its own database
with a unique name and its own Redis namespace, provisioned and migrated like production, and drops
them afterwards, so runs never see each other's data. Nothing here is mocked: the PostgreSQL, Redis
and gRPC servers are real."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from kit import lock_probe
from kit.paths import LOCK_REPORT_DIR, SCHEMAS
from kit.platform import ENV_PREFIX

# Connections are the scarce resource (max_connections is 100 here and in CI) when two test processes
# each keep a dozen in-process servers up and the e2e platform runs five more processes: every pool
# keeps one idle connection and opens up to 6 more only while a test needs them (the e2e processes
# inherit these variables).
TEST_POOL_SIZE = os.environ.get("RESERVA_TEST_DB_POOL_SIZE", "1")
TEST_POOL_OVERFLOW = os.environ.get("RESERVA_TEST_DB_MAX_OVERFLOW", "6")
for _prefix in ENV_PREFIX.values():
    os.environ.setdefault(f"{_prefix}_DB_POOL_SIZE", TEST_POOL_SIZE)
    os.environ.setdefault(f"{_prefix}_DB_MAX_OVERFLOW", TEST_POOL_OVERFLOW)


# Tests that load the whole machine: `./reserva test` runs them after the parallel phase, one at a time.
SERIAL_FILES = {
    "test_contention_proof.py",
    "test_chaos_services.py",
    "test_chaos_events.py",
    "test_min_lock_cluster.py",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "serial: loads the whole machine; run alone, after the parallel phase")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def infra():
    from kit.infra import ensure_infrastructure

    return ensure_infrastructure()


@pytest.fixture(scope="session")
def run_id() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    return f"{worker}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def database(infra, run_id):
    """A fresh, fully migrated database for this test process."""
    from kit.cli import migrate_all
    from kit.provision import drop_database

    name = f"reserva_t_{run_id}"
    # RESERVA_TEST_SERVICES=availability,booking limits migrations while developing one service.
    only = [s for s in os.environ.get("RESERVA_TEST_SERVICES", "").split(",") if s] or None
    await migrate_all(infra.admin_database_url, name, services=only)
    yield name
    await drop_database(infra.admin_database_url, name)


@pytest.fixture(scope="session")
async def redis_namespace(infra, run_id):
    from kit.cache import make_redis

    namespace = f"rt_{run_id}"
    yield namespace
    redis = make_redis(infra.redis_url)
    try:
        async for key in redis.scan_iter(match=f"{namespace}:*", count=500):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture(scope="session")
def settings_for(infra, database, redis_namespace):
    """settings_for("availability", SettingsClass) -> settings wired to this run's database and Redis,
    with the strict lock probe on (an operation over its budget fails the test)."""
    from kit.provision import service_database_url

    def build(service: str, settings_class, **overrides):
        values = dict(
            service_name=service,
            database_url=service_database_url(infra.admin_database_url, database, service),
            redis_url=infra.redis_url,
            redis_namespace=redis_namespace,
            grpc_port=0,
            lock_probe_enabled=True,
            lock_probe_strict=True,
            log_json=False,
        )
        values.update(db_pool_size=int(TEST_POOL_SIZE), db_max_overflow=int(TEST_POOL_OVERFLOW))
        values.update(overrides)
        return settings_class(**values)

    return build


@pytest.fixture
async def engine_for(infra, database):
    """engine_for("payments", lock_probe_sample_rate=0.0, ...) -> (session factory, lock probe) of
    a kit engine on that service's role in this run's database (the unit of work's parts, without a
    server); the engines are disposed after the test."""
    from kit.config import ServiceSettings
    from kit.db import make_engine, make_lock_probe, make_session_factory
    from kit.provision import service_database_url

    engines = []

    def build(service: str, **overrides):
        values = dict(db_pool_size=1, db_max_overflow=0)
        values.update(overrides)
        settings = ServiceSettings(
            service_name=service,
            database_url=service_database_url(infra.admin_database_url, database, service),
            **values,
        )
        engines.append(make_engine(settings))
        return make_session_factory(engines[-1]), make_lock_probe(settings)

    yield build
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def lock_readings():
    """The lock probe's readings taken during one test."""
    start = lock_probe.READINGS.mark()
    return lambda: lock_probe.READINGS.since(start)


def service_env_prefix(service: str) -> str:
    return ENV_PREFIX[service]


__all__ = ["SCHEMAS"]


# The lock probe's figures for the whole run: each test process writes what it measured, the
# controller prints one table (operation, transactions, max locks) at the end; `reserva test` then
# fails if an RPC of a service is missing from it (kit.cli.unmeasured_rpcs).
def pytest_sessionstart(session):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        LOCK_REPORT_DIR.mkdir(parents=True, exist_ok=True)
        for stale in LOCK_REPORT_DIR.glob("*.json"):
            stale.unlink(missing_ok=True)  # another session in this checkout may have taken it


def pytest_sessionfinish(session, exitstatus):
    figures = {
        f"{service}.{operation} ({kind})": {
            "count": f.transactions, "max_total": f.max_total, "max_relation": f.max_relation,
            "max_advisory": f.max_advisory,
        }
        for (service, operation, kind), f in lock_probe.READINGS.per_operation.items()
    }  # fmt: skip
    LOCK_REPORT_DIR.mkdir(parents=True, exist_ok=True)
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (LOCK_REPORT_DIR / f"{name}.json").write_text(json.dumps(figures))


def pytest_terminal_summary(terminalreporter):
    merged: dict[str, dict] = {}
    for path in LOCK_REPORT_DIR.glob("*.json"):
        for key, f in json.loads(path.read_text()).items():
            m = merged.setdefault(key, {"count": 0, "max_total": 0, "max_relation": 0, "max_advisory": 0})
            m["count"] += f["count"]
            for k in ("max_total", "max_relation", "max_advisory"):
                m[k] = max(m[k], f[k])
    if not merged:
        return
    total = sum(f["count"] for f in merged.values())
    terminalreporter.section(f"lock probe: {total} transactions measured, {len(merged)} operations")
    terminalreporter.write_line(f"{'operation':<60} {'txns':>6} {'max locks':>9} {'max rel':>7} {'max adv':>7}")
    for key in sorted(merged):
        f = merged[key]
        terminalreporter.write_line(
            f"{key:<60} {f['count']:>6} {f['max_total']:>9} {f['max_relation']:>7} {f['max_advisory']:>7}"
        )
