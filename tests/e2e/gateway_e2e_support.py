"""Helpers of the gateway e2e tests: users with tokens, places with an always-open schedule, and
slot times far enough ahead (a unique module name: `conftest` is ambiguous across folders)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import httpx

# The platform's bootstrap agent and per-user rate limit (tests/e2e/conftest.py starts it with these).
E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD = "agent@e2e.example.com", "e2e-agent-password"
# Low enough that one test can reach it, high enough for the rest (and schemathesis) never to.
E2E_USER_RATE_LIMIT = 600

PASSWORD = "e2e user password"
PROBLEM = "application/problem+json"


def auth(user: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


async def login(api: httpx.AsyncClient, email: str, password: str) -> dict:
    tokens = await api.post("/v1/auth/token", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


async def new_user(api: httpx.AsyncClient, *roles: str) -> dict:
    email = f"e2e{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "E2E User", "roles": list(roles or ("client",))}
    created = await api.post("/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    return {**created.json(), **await login(api, email, PASSWORD)}


async def agent(api: httpx.AsyncClient) -> dict:
    return await login(api, E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD)


def place_body(mode: str = "INSTANT", **overrides) -> dict:
    always_open = [
        {"weekday": d, "start": {"hours": 0, "minutes": 0}, "end": {"hours": 24, "minutes": 0}} for d in range(1, 8)
    ]
    body = {
        "title": f"E2E place {uuid.uuid4().hex[:6]}",
        "city": f"City{uuid.uuid4().hex[:8]}",
        "address": "Main street 1",
        "capacity": 6,
        "price_per_hour": {"amount_minor": 2000, "currency_code": "EUR"},
        "time_zone": "UTC",
        "booking_mode": mode,
        "schedule": {"opening_hours": always_open, "slot_granularity": "3600s"},
    }
    body.update(overrides)
    return body


async def new_place(api: httpx.AsyncClient, host: dict, mode: str = "INSTANT", **overrides) -> dict:
    created = await api.post("/v1/places", json=place_body(mode, **overrides), headers=auth(host))
    assert created.status_code == 201, created.text
    return created.json()


def slot(days_ahead: int | None = None, hours: int = 2) -> dict:
    """A future, hour-aligned UTC range (a random day so that tests never share one)."""
    day = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    start = day + timedelta(days=days_ahead if days_ahead is not None else random.randint(3, 300))
    end = start + timedelta(hours=hours)
    return {"start_time": start.isoformat().replace("+00:00", "Z"), "end_time": end.isoformat().replace("+00:00", "Z")}


def assert_problem(reply: httpx.Response, *statuses: int, code: str | None = None) -> dict:
    assert reply.status_code in statuses, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM), reply.headers["content-type"]
    body = reply.json()
    assert body["status"] == reply.status_code and body["code"]
    assert "Traceback" not in reply.text
    if code:
        assert body["code"] == code, body
    return body
