"""Helpers of the gateway integration tests (a unique module name: `conftest` is ambiguous)."""

import uuid

import httpx

from gateway.config import GatewaySettings

DOWN = "127.0.0.1:9"  # discard port: nothing listens, connections are refused


async def register(http: httpx.AsyncClient, roles=("client",), password="correct horse battery") -> dict:
    email = f"u{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": password, "name": "Test User", "roles": list(roles)}
    created = await http.post("/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    tokens = await http.post("/v1/auth/token", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    return {**created.json(), "password": password, **tokens.json()}


def auth(user: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def settings_with_peers_down(settings_for, **overrides) -> GatewaySettings:
    """The gateway's settings for these tests: a free port, every service down."""
    peers = {f"{name}_addr": DOWN for name in ("availability", "booking", "payments", "notifications")}
    return settings_for("gateway", GatewaySettings, http_port=0, **peers, **overrides)


async def assert_session_works(http: httpx.AsyncClient, session: dict) -> None:
    """The session's access token reads the profile, its refresh token rotates, and the new pair works."""
    me = await http.get("/v1/users/me", headers=auth(session))
    assert me.status_code == 200, me.text
    rotated = await http.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    assert (await http.get("/v1/users/me", headers=auth(rotated.json()))).status_code == 200
