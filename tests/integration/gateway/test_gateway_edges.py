"""What the edge answers when the caller sends nonsense or a service is down: problem+json with a
clear status and code, never a 500 or a traceback."""

import asyncio
import uuid

import httpx
import pytest
from gateway_it_support import auth, register

pytestmark = pytest.mark.asyncio
PROBLEM = "application/problem+json"


def assert_problem(reply, status: int, code: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body = reply.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert "Traceback" not in reply.text
    if code:
        assert body["code"] == code
    return body


async def test_bad_json_is_a_400(http):
    reply = await http.post("/v1/auth/register", content=b'{"email": ', headers={"content-type": "application/json"})
    assert_problem(reply, 400, "INVALID_JSON")


async def test_wrong_types_and_missing_fields_are_422_naming_the_field(http):
    wrong = await http.post("/v1/auth/register", json={"email": 5, "password": ["x"], "name": "n"})
    body = assert_problem(wrong, 422, "INVALID_ARGUMENT")
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "email"), ("body", "password")}
    missing = await http.post("/v1/auth/token", json={})
    assert {e["loc"][-1] for e in assert_problem(missing, 422)["errors"]} == {"email", "password"}


async def test_a_huge_payload_is_413_before_it_is_parsed(http):
    reply = await http.post(
        "/v1/auth/register", content=b"{" + b" " * (200 * 1024) + b"}", headers={"content-type": "application/json"}
    )
    assert_problem(reply, 413, "PAYLOAD_TOO_LARGE")


async def test_unknown_routes_and_methods_are_problems_too(http):
    assert_problem(await http.get("/v1/nothing-here"), 404, "NOT_FOUND")
    assert_problem(await http.delete("/v1/auth/token"), 405, "METHOD_NOT_ALLOWED")


async def test_a_report_ending_at_the_start_of_time_is_a_422_not_a_500(http):
    host = await register(http, roles=("host",))
    # Found by schemathesis: the default window (30 days before end_time) overflowed in the gateway.
    reply = await http.get("/v1/reports/bookings", params={"end_time": "0001-01-01T00:00:00Z"}, headers=auth(host))
    body = assert_problem(reply, 422, "INVALID_TIME_RANGE")
    assert "start_time" in body["detail"]


async def test_a_service_that_is_down_is_503_with_retry_after(http):
    user = await register(http)
    reply = await http.get("/v1/places", headers=auth(user))
    assert_problem(reply, 503, "AVAILABILITY_UNAVAILABLE")
    assert int(reply.headers["retry-after"]) >= 1


async def test_health_reports_each_service_not_serving_and_the_gateway_up(http):
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    health = (await http.get("/v1/health")).json()
    assert health == {
        "status": "NOT_SERVING",
        "services": {n: "NOT_SERVING" for n in ("availability", "booking", "payments", "notifications")},
    }


async def test_a_retried_post_returns_the_original_response(http):
    body = {"email": f"idem{uuid.uuid4().hex[:8]}@example.com", "password": "long enough pw", "name": "Idem"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await http.post("/v1/auth/register", json=body, headers=key)
    second = await http.post("/v1/auth/register", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = await http.post("/v1/auth/register", json=body | {"name": "Other"}, headers=key)
    assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED")


async def test_repeated_failed_logins_for_one_account_are_rate_limited(http):
    email = f"target{uuid.uuid4().hex[:8]}@example.com"
    statuses = [
        (await http.post("/v1/auth/token", json={"email": email, "password": "guess"})).status_code for _ in range(12)
    ]
    assert statuses[:10] == [401] * 10
    limited = await http.post("/v1/auth/token", json={"email": email, "password": "guess"})
    assert_problem(limited, 429, "RATE_LIMITED")
    assert int(limited.headers["retry-after"]) >= 1


async def test_a_cursor_from_another_list_or_garbage_is_422(http, agent):
    assert_problem(await http.get("/v1/users", params={"page_token": "%%%"}, headers=auth(agent)), 422)
    assert_problem(
        await http.get("/v1/users", params={"page_token": "eyJrIjoicGxhY2VzIiwicCI6IngifQ"}, headers=auth(agent)),
        422,
        "INVALID_PAGE_TOKEN",
    )


async def test_an_idle_keep_alive_connection_outlives_the_clients_own_idle_timeout(gateway_url):
    """httpx drops a pooled connection after 5 idle seconds; the gateway must not close it first, or a
    request sent on it at that moment is lost (the ReadError the contention proof once met)."""
    limits = httpx.Limits(max_connections=1, keepalive_expiry=30)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, limits=limits) as client:
        first = await client.get("/openapi.json")
        await asyncio.sleep(6)
        second = await client.get("/openapi.json")
    assert first.status_code == second.status_code == 200
    # The same connection served both: the server kept it open past httpx's default 5 s.
    assert first.extensions["network_stream"] is second.extensions["network_stream"]
