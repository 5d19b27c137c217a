"""The whole platform (four services and the gateway, each its own process), started once per
session; e2e tests talk to it over HTTP. It gets a database and a Redis namespace of its own (these
fixtures override the root ones for tests/e2e): its workers (sweepers, the notifications consumer and
sender) must not pick up rows and events of the in-process integration tests of the same worker."""

from __future__ import annotations

import httpx
import pytest
from gateway_e2e_support import E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD, E2E_USER_RATE_LIMIT

from kit.platform import Platform


@pytest.fixture(scope="session")
async def database(infra, run_id):
    from kit.cli import migrate_all
    from kit.provision import drop_database

    name = f"reserva_e2e_{run_id}"
    await migrate_all(infra.admin_database_url, name)
    yield name
    await drop_database(infra.admin_database_url, name)


@pytest.fixture(scope="session")
async def redis_namespace(infra, run_id):
    from kit.cache import make_redis

    namespace = f"re2e_{run_id}"
    yield namespace
    redis = make_redis(infra.redis_url)
    try:
        async for key in redis.scan_iter(match=f"{namespace}:*", count=500):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture(scope="session")
def platform(infra, database, redis_namespace):
    platform = Platform(
        admin_database_url=infra.admin_database_url,
        database=database,
        redis_url=infra.redis_url,
        redis_namespace=redis_namespace,
        fixed_ports=False,
        extra_env={
            "GATEWAY_BOOTSTRAP_AGENT_EMAIL": E2E_AGENT_EMAIL,
            "GATEWAY_BOOTSTRAP_AGENT_PASSWORD": E2E_AGENT_PASSWORD,
            "GATEWAY_RATE_LIMIT_PER_USER": f"{E2E_USER_RATE_LIMIT}/minute",
            "GATEWAY_RATE_LIMIT_PER_IP": "1000000/minute",
            "GATEWAY_RATE_LIMIT_LOGIN": "1000/minute",
            "GATEWAY_LOCK_PROBE_STRICT": "true",
            # The contention proof queues 1,000 bookings on one place: give a request the 20 s a
            # mobile client would wait, so that queueing is answered, not shed as 503.
            "GATEWAY_REQUEST_DEADLINE_S": "20",
            "GATEWAY_DEFAULT_DEADLINE_S": "18",
        },
    )
    platform.start(timeout_s=90)
    yield platform
    platform.stop()


@pytest.fixture(scope="session")
def gateway_url(platform) -> str:
    return platform.gateway_url


@pytest.fixture
async def api(gateway_url):
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        yield client
