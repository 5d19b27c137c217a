"""A user's contact details reach notifications even when it is down at the time: the change is
recorded with the user's, and a retry worker tells notifications later (here notifications stays
down, so the record stays, and each failed try pushes the next one back)."""

import asyncpg
import pytest
from gateway_it_support import auth, register
from waiting import wait_until

from kit.provision import service_database_url


@pytest.fixture
async def identity_db(infra, database):
    dsn = service_database_url(infra.admin_database_url, database, "gateway").replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


async def _share(db: asyncpg.Connection, user_id: str):
    return await db.fetchrow(
        "SELECT share_id::text, with_email, attempts, next_attempt_at - now() AS wait"
        " FROM identity.contact_shares WHERE user_id = $1::uuid",
        user_id,
    )


async def test_a_registration_notifications_did_not_take_is_kept_and_retried_with_backoff(http, identity_db):
    user = await register(http)  # 201 although notifications is down
    share = await _share(identity_db, user["id"])
    assert share is not None and share["with_email"] and share["attempts"] == 0

    # Due now: the retry worker (every 0.2 s here, with a base wait of 5 s) tries, fails, and
    # waits longer before each next try.
    await identity_db.execute(
        "UPDATE identity.contact_shares SET next_attempt_at = now() WHERE user_id = $1::uuid", user["id"]
    )
    for attempts in (1, 2):

        async def tried(times: int = attempts):
            share = await _share(identity_db, user["id"])
            return share if share["attempts"] >= times else None

        share = await wait_until(tried, timeout_s=30)
        assert share["attempts"] == attempts
        assert 0 < share["wait"].total_seconds() <= 5 * 2 ** (attempts - 1)
        await identity_db.execute(
            "UPDATE identity.contact_shares SET next_attempt_at = now() WHERE user_id = $1::uuid", user["id"]
        )


async def test_a_later_change_replaces_the_pending_one_and_keeps_its_email(http, identity_db):
    user = await register(http)
    first = await _share(identity_db, user["id"])
    changed = await http.patch("/v1/users/me", json={"locale": "fr"}, headers=auth(user))
    assert changed.status_code == 200, changed.text
    second = await _share(identity_db, user["id"])
    # A new request id (notifications must not take it for a retry of the first), the e-mail kept,
    # and the backoff starts over.
    assert second["share_id"] != first["share_id"] and second["with_email"] and second["attempts"] == 0

    # A change notifications keeps nothing of (the name) records no share.
    await identity_db.execute("DELETE FROM identity.contact_shares WHERE user_id = $1::uuid", user["id"])
    renamed = await http.patch("/v1/users/me", json={"name": "Someone Else"}, headers=auth(user))
    assert renamed.status_code == 200, renamed.text
    assert await _share(identity_db, user["id"]) is None


async def test_roles_given_in_bulk_are_recorded_for_notifications(http, agent, identity_db):
    users = [await register(http) for _ in range(3)]
    ids = [u["id"] for u in users]
    await identity_db.execute("DELETE FROM identity.contact_shares WHERE user_id = ANY($1::uuid[])", ids)
    headers = {"Authorization": f"Bearer {agent['access_token']}"}
    body = {"user_ids": ids, "roles": ["client", "host"]}
    given = await http.post("/v1/users:bulkSetRoles", json=body, headers=headers)
    assert given.status_code == 200, given.text
    shares = [await _share(identity_db, user_id) for user_id in ids]
    assert all(s is not None and not s["with_email"] for s in shares)
    assert len({s["share_id"] for s in shares}) == 3
