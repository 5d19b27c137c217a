"""The gateway served in-process on a real socket, with the real PostgreSQL (identity schema) and
Redis of this test run. Its peers point at a closed port: every service is down, which is what the
"unavailable" tests need; identity needs no peer."""

from __future__ import annotations

import httpx
import pytest
from gateway_it_support import settings_with_peers_down

from gateway.bootstrap import start

AGENT_EMAIL, AGENT_PASSWORD = "agent@it.example.com", "integration-agent-pw"


@pytest.fixture(scope="session")
async def gateway_url(settings_for):
    settings = settings_with_peers_down(
        settings_for,
        rate_limit_per_user="100000/minute",
        rate_limit_per_ip="100000/minute",
        max_body_bytes=64 * 1024,
        bulk_batch_size=2,
        bootstrap_agent_email=AGENT_EMAIL,
        bootstrap_agent_password=AGENT_PASSWORD,
        contact_share_interval_s=0.2,
        contact_retry_base_s=5.0,
    )
    running = await start(settings)
    yield running.url
    await running.stop()


@pytest.fixture
async def http(gateway_url):
    async with httpx.AsyncClient(base_url=gateway_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
async def agent(gateway_url) -> dict:
    """The bootstrap agent's tokens, from one login per test process: logins are rate-limited per
    e-mail (10 a minute), and one process may run every gateway test file in a row."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=20) as client:
        tokens = await client.post("/v1/auth/token", json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return tokens.json()
