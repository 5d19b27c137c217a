"""Helpers of the gateway integration tests (a unique module name: `conftest` is ambiguous)."""

import uuid

import httpx


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
