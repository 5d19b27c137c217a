"""A POST answered "conflict, retry" (409 with Retry-After: the database was busy, the same
request still in flight) is not replayed for its Idempotency-Key: the retry is carried out. A
settled answer still is."""

import asyncpg
import pytest
from gateway_it_support import register

from kit.provision import admin_dsn


@pytest.fixture
async def admin(infra, database):
    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    yield conn
    await conn.close()


async def test_a_busy_answer_is_retried_not_replayed_and_a_settled_one_is_replayed(http, agent, admin):
    user = await register(http)
    headers = {"Authorization": f"Bearer {agent['access_token']}", "Idempotency-Key": f"roles-{user['id'][:8]}"}
    body = {"user_ids": [user["id"]], "roles": ["client", "host"]}

    # Another session holds the user's row: the gateway's lock timeout ends the first try.
    locker = admin.transaction()
    await locker.start()
    await admin.execute("SELECT 1 FROM identity.users WHERE id = $1::uuid FOR UPDATE", user["id"])
    try:
        busy = await http.post("/v1/users:bulkSetRoles", json=body, headers=headers)
    finally:
        await locker.rollback()
    assert busy.status_code == 409 and busy.headers.get("Retry-After") == "1", busy.text
    assert busy.json()["code"] == "CONCURRENT_MODIFICATION"

    done = await http.post("/v1/users:bulkSetRoles", json=body, headers=headers)
    assert done.status_code == 200 and done.json()["changed"] == 1, done.text
    assert "idempotent-replayed" not in done.headers
    again = await http.post("/v1/users:bulkSetRoles", json=body, headers=headers)
    assert again.status_code == 200 and again.json() == done.json()
    assert again.headers.get("idempotent-replayed") == "true"
