"""Test harness shared by every layer. Each test process (each xdist worker) gets its own database
with a unique name and its own Redis namespace, provisioned and migrated like production, and drops
them afterwards, so runs never see each other's data. Nothing here is mocked: the PostgreSQL, Redis
and gRPC servers are real."""

from __future__ import annotations

import os
import uuid

import pytest
from kit import lock_probe
from kit.paths import SCHEMAS
from kit.platform import ENV_PREFIX


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
        values.update(overrides)
        return settings_class(**values)

    return build


@pytest.fixture
def lock_readings():
    """The lock probe's readings taken during one test."""
    start = len(lock_probe.READINGS)
    # READINGS is a bounded deque; tests read only what was appended after `start`.
    return lambda: list(lock_probe.READINGS)[start:]


def service_env_prefix(service: str) -> str:
    return ENV_PREFIX[service]


__all__ = ["SCHEMAS"]
