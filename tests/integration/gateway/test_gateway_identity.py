"""Identity through HTTP on the real database: registration, tokens, refresh rotation, logout,
profiles, and the agents' user management."""

import uuid

import pytest
from gateway_it_support import assert_session_works, auth, register

pytestmark = pytest.mark.asyncio


async def test_registering_returns_the_user_without_its_password(http):
    email = f"New.{uuid.uuid4().hex[:8]}@Example.com"
    reply = await http.post(
        "/v1/auth/register",
        json={"email": email, "password": "long enough pw", "name": "Ann", "time_zone": "Europe/Berlin"},
    )
    assert reply.status_code == 201
    body = reply.json()
    assert body["email"] == email.lower() and body["roles"] == ["client"] and body["time_zone"] == "Europe/Berlin"
    assert "password" not in reply.text and "argon2" not in reply.text


async def test_registering_the_same_email_twice_is_a_409(http):
    user = await register(http)
    again = await http.post(
        "/v1/auth/register", json={"email": user["email"], "password": "another pw 123", "name": "B"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "EMAIL_ALREADY_REGISTERED"


async def test_nobody_can_register_as_an_agent(http):
    email = f"a{uuid.uuid4().hex[:8]}@example.com"
    reply = await http.post(
        "/v1/auth/register", json={"email": email, "password": "long enough pw", "name": "A", "roles": ["agent"]}
    )
    assert reply.status_code == 422


async def test_a_wrong_password_and_an_unknown_email_get_the_same_401(http):
    user = await register(http)
    wrong = await http.post("/v1/auth/token", json={"email": user["email"], "password": "not the password"})
    unknown = await http.post("/v1/auth/token", json={"email": "nobody@example.com", "password": "whatever"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "INVALID_CREDENTIALS"
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_the_access_token_reads_the_own_profile(http):
    user = await register(http, roles=("client", "host"))
    me = await http.get("/v1/users/me", headers=auth(user))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"] and me.json()["roles"] == ["client", "host"]


@pytest.fixture
async def identity_db(infra, database):
    import asyncpg

    from kit.provision import admin_dsn

    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    yield conn
    await conn.close()


async def test_requests_without_or_with_a_forged_token_are_401(http):
    assert (await http.get("/v1/users/me")).status_code == 401
    forged = await http.get("/v1/users/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401 and forged.json()["code"] == "INVALID_TOKEN"


async def test_a_refresh_token_is_rotated_and_its_reuse_ends_every_session(http, identity_db):
    user = await register(http)
    login = await http.post("/v1/auth/token", json={"email": user["email"], "password": user["password"]})
    other = login.json()
    first = await http.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != user["refresh_token"]
    # Presented again at once: the same client's retry (a race, a lost answer), refused and no more.
    retry = await http.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert retry.status_code == 401 and retry.json()["code"] == "INVALID_REFRESH_TOKEN"
    assert (await http.get("/v1/users/me", headers=auth(rotated))).status_code == 200
    assert (await http.get("/v1/users/me", headers=auth(other))).status_code == 200
    # Presented again once the grace is over: a copy in someone else's hands.
    await identity_db.execute(
        "UPDATE identity.refresh_tokens SET revoked_at = revoked_at - interval '1 minute'"
        " WHERE user_id = $1::uuid AND revoked_reason = 'rotated'",
        user["id"],
    )
    replay = await http.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert replay.status_code == 401 and replay.json()["code"] == "INVALID_REFRESH_TOKEN"
    # The reuse revoked the family: the rotated token and its access token no longer work.
    assert (await http.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).status_code == 401
    assert (await http.get("/v1/users/me", headers=auth(rotated))).status_code == 401
    # And so are the user's other sessions.
    assert (await http.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 401
    assert (await http.get("/v1/users/me", headers=auth(other))).status_code == 401


async def test_logout_revokes_the_access_token_and_the_refresh_token(http):
    user = await register(http)
    out = await http.post("/v1/auth/logout", json={"refresh_token": user["refresh_token"]}, headers=auth(user))
    assert out.status_code == 204
    me = await http.get("/v1/users/me", headers=auth(user))
    assert me.status_code == 401 and me.json()["code"] == "TOKEN_REVOKED"
    assert (await http.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})).status_code == 401


async def test_a_user_updates_the_profile_and_bad_values_are_422_with_a_reason(http):
    user = await register(http)
    changed = await http.patch(
        "/v1/users/me", json={"name": "Renamed", "phone": "+33612345678", "locale": "fr-FR"}, headers=auth(user)
    )
    assert changed.status_code == 200
    assert changed.json()["name"] == "Renamed" and changed.json()["phone"] == "+33612345678"
    for zone in ("Mars/Olympus", "Europe"):  # "Europe", a folder of the zone database, answered 500
        bad = await http.patch("/v1/users/me", json={"time_zone": zone}, headers=auth(user))
        assert bad.status_code == 422 and bad.json()["code"] == "INVALID_TIME_ZONE", (zone, bad.text)
    bad_phone = await http.patch("/v1/users/me", json={"phone": "0612"}, headers=auth(user))
    assert bad_phone.status_code == 422 and bad_phone.json()["code"] == "INVALID_PHONE"


async def test_a_password_change_ends_other_sessions_and_the_new_password_works(http):
    user = await register(http)
    changed = await http.patch("/v1/users/me", json={"password": "a brand new secret"}, headers=auth(user))
    assert changed.status_code == 200
    assert (await http.get("/v1/users/me", headers=auth(user))).status_code == 401
    login = await http.post("/v1/auth/token", json={"email": user["email"], "password": "a brand new secret"})
    assert login.status_code == 200


async def test_after_a_password_change_the_old_refresh_token_is_refused_and_the_new_session_lives_on(http):
    phone = await register(http)
    changed = await http.patch("/v1/users/me", json={"password": "a brand new secret"}, headers=auth(phone))
    assert changed.status_code == 200
    login = await http.post("/v1/auth/token", json={"email": phone["email"], "password": "a brand new secret"})
    laptop = login.json()
    # The phone still holds the token the password change revoked: refused, but not taken for a
    # stolen one, so the laptop's new session is left alone.
    stale = await http.post("/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert stale.status_code == 401 and stale.json()["code"] == "INVALID_REFRESH_TOKEN"
    await assert_session_works(http, laptop)


async def test_a_logged_out_refresh_token_is_refused_and_the_other_sessions_live_on(http):
    phone = await register(http)
    login = await http.post("/v1/auth/token", json={"email": phone["email"], "password": phone["password"]})
    laptop = login.json()
    out = await http.post("/v1/auth/logout", json={"refresh_token": phone["refresh_token"]}, headers=auth(phone))
    assert out.status_code == 204
    stale = await http.post("/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert stale.status_code == 401 and stale.json()["code"] == "INVALID_REFRESH_TOKEN"
    await assert_session_works(http, laptop)
