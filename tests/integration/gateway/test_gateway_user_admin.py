"""Agents' user management through HTTP: search with keyset pages, create, roles, deactivation,
bulk operations in batches, statistics by aggregate SQL."""

import uuid

import pytest
from gateway_it_support import assert_session_works, auth, register

pytestmark = pytest.mark.asyncio


async def test_an_agent_walks_a_search_page_by_page_and_sees_each_user_once(http, agent):
    token = uuid.uuid4().hex[:10]
    for n in range(5):
        reply = await http.post(
            "/v1/users",
            json={"email": f"{token}{n}@example.com", "password": "long enough pw", "name": f"Walker {n}"},
            headers=auth(agent),
        )
        assert reply.status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        params = {"q": token, "page_size": 2} | ({"page_token": cursor} if cursor else {})
        page = await http.get("/v1/users", params=params, headers=auth(agent))
        assert page.status_code == 200
        seen += [u["email"] for u in page.json()["users"]]
        cursor, pages = page.json()["next_page_token"], pages + 1
        if not cursor:
            break
    assert seen == sorted(f"{token}{n}@example.com" for n in range(5))
    assert pages == 3


async def test_a_client_or_host_cannot_manage_users(http):
    for roles in (("client",), ("host",)):
        user = await register(http, roles=roles)
        listing = await http.get("/v1/users", headers=auth(user))
        assert listing.status_code == 403 and listing.json()["code"] == "ROLE_REQUIRED"
        other = await http.get(f"/v1/users/{user['id']}", headers=auth(user))
        assert other.status_code == 403 and "email" not in other.json()


async def test_an_agent_changes_roles_and_the_old_token_stops_working(http, agent):
    user = await register(http)
    changed = await http.patch(f"/v1/users/{user['id']}", json={"roles": ["client", "host"]}, headers=auth(agent))
    assert changed.status_code == 200 and changed.json()["roles"] == ["client", "host"]
    assert (await http.get("/v1/users/me", headers=auth(user))).status_code == 401
    again = await http.post("/v1/auth/token", json={"email": user["email"], "password": user["password"]})
    me = await http.get("/v1/users/me", headers=auth(again.json()))
    assert me.json()["roles"] == ["client", "host"]


async def test_a_deactivated_user_can_neither_use_the_token_nor_log_in(http, agent):
    user = await register(http)
    off = await http.post(f"/v1/users/{user['id']}:deactivate", headers=auth(agent))
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await http.get("/v1/users/me", headers=auth(user))).status_code == 401
    login = await http.post("/v1/auth/token", json={"email": user["email"], "password": user["password"]})
    assert login.status_code == 401


async def _deactivate_and_reactivate(http, agent, user_id):
    off = await http.post(f"/v1/users/{user_id}:deactivate", headers=auth(agent))
    assert off.status_code == 200
    on = await http.patch(f"/v1/users/{user_id}", json={"active": True}, headers=auth(agent))
    assert on.status_code == 200 and on.json()["active"] is True


async def _bulk_deactivate_and_reactivate(http, agent, user_id):
    for verb in ("bulkDeactivate", "bulkActivate"):
        done = await http.post(f"/v1/users:{verb}", json={"user_ids": [user_id]}, headers=auth(agent))
        assert done.status_code == 200 and done.json()["changed"] == 1


async def _bulk_set_roles(http, agent, user_id):
    body = {"user_ids": [user_id], "roles": ["client", "host"]}
    done = await http.post("/v1/users:bulkSetRoles", json=body, headers=auth(agent))
    assert done.status_code == 200 and done.json()["changed"] == 1


@pytest.mark.parametrize("end_sessions", [_deactivate_and_reactivate, _bulk_deactivate_and_reactivate, _bulk_set_roles])
async def test_a_refresh_token_an_agent_revoked_is_refused_and_the_next_session_lives_on(http, agent, end_sessions):
    user = await register(http)
    await end_sessions(http, agent, user["id"])
    login = await http.post("/v1/auth/token", json={"email": user["email"], "password": user["password"]})
    assert login.status_code == 200
    # The old token is refused; presenting it is no sign of theft, so the new session is kept.
    stale = await http.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert stale.status_code == 401 and stale.json()["code"] == "INVALID_REFRESH_TOKEN"
    await assert_session_works(http, login.json())


async def test_bulk_deactivation_runs_in_batches_and_ignores_unknown_ids(http, agent):
    users = [await register(http) for _ in range(3)]
    ids = [u["id"] for u in users] + [str(uuid.uuid4())]
    result = await http.post("/v1/users:bulkDeactivate", json={"user_ids": ids}, headers=auth(agent))
    assert result.status_code == 200
    assert result.json() == {"requested": 4, "changed": 3, "batches": 2}
    for user in users:
        fetched = await http.get(f"/v1/users/{user['id']}", headers=auth(agent))
        assert fetched.json()["active"] is False
    again = await http.post("/v1/users:bulkDeactivate", json={"user_ids": ids}, headers=auth(agent))
    assert again.json()["changed"] == 0


async def test_bulk_roles_give_every_user_the_same_roles(http, agent):
    users = [await register(http) for _ in range(3)]
    result = await http.post(
        "/v1/users:bulkSetRoles", json={"user_ids": [u["id"] for u in users], "roles": ["host"]}, headers=auth(agent)
    )
    assert result.json()["changed"] == 3
    for user in users:
        assert (await http.get(f"/v1/users/{user['id']}", headers=auth(agent))).json()["roles"] == ["host"]


async def test_user_statistics_count_roles_and_todays_signups(http, agent):
    before = (await http.get("/v1/reports/users", headers=auth(agent))).json()
    await register(http, roles=("host",))
    after = await http.get("/v1/reports/users", headers=auth(agent))
    assert after.status_code == 200
    stats = after.json()
    assert stats["total"] == before["total"] + 1
    assert stats["by_role"]["host"] == before["by_role"].get("host", 0) + 1
    assert sum(d["count"] for d in stats["signups_per_day"]) == sum(d["count"] for d in before["signups_per_day"]) + 1
