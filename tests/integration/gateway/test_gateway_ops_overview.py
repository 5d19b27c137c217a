"""GET /v1/ops/overview on the in-process gateway with the real PostgreSQL and Redis: agents only;
it sees (as the gateway's role, a member of pg_monitor) a session of a service role holding a lock,
the session waiting for it, a slow statement, and the snapshots the processes publish, the
gateway's own included."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from gateway_it_support import auth, register

from kit.cache import make_redis
from kit.lock_probe import LockBudget, LockProbe
from kit.ops_snapshot import OpsSnapshotPublisher
from kit.provision import service_database_url


async def overview(http, agent) -> dict:
    answer = await http.get("/v1/ops/overview", headers=auth(agent))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()


async def eventually(check, attempts: int = 200, pause_s: float = 0.05):
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(pause_s)
    raise AssertionError("condition never became true")


@pytest.fixture
async def availability_role(infra, database):
    """Connections as the availability role, and a table of its schema private to the test."""
    dsn = service_database_url(infra.admin_database_url, database, "availability").replace("+asyncpg", "")
    opened: list[asyncpg.Connection] = []

    async def connect(application_name: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": application_name})
        opened.append(conn)
        return conn

    table = f"availability.ops_it_{uuid.uuid4().hex[:10]}"
    await (await connect("ops-it-setup")).execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    yield connect, table
    for conn in opened:
        conn.terminate()
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        await owner.close()


async def test_the_overview_answers_agents_only(http, agent):
    anonymous = await http.get("/v1/ops/overview")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHENTICATED"
    client = await register(http, ("client",))
    refused = await http.get("/v1/ops/overview", headers=auth(client))
    assert refused.status_code == 403 and refused.json()["code"] == "ROLE_REQUIRED"
    host = await register(http, ("host",))
    assert (await http.get("/v1/ops/overview", headers=auth(host))).status_code == 403

    body = await overview(http, agent)
    assert body["full_visibility"] is True  # provisioning made the gateway's role a member of pg_monitor
    assert body["snapshots_available"] is True
    assert [s["service"] for s in body["services"]][:5] == [
        "availability",
        "booking",
        "payments",
        "notifications",
        "gateway",
    ]
    table = body["lock_table"]
    assert table["capacity"] == table["max_locks_per_transaction"] * (
        table["max_connections"] + table["max_prepared_transactions"]
    )


async def test_the_overview_shows_a_blocked_session_its_holder_and_a_slow_statement(http, agent, availability_role):
    connect, table = availability_role
    tag = uuid.uuid4().hex[:6]
    holder = await connect(f"ops-it-holder-{tag}")
    holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
    await holder.execute("BEGIN")
    await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    victim = await connect(f"ops-it-victim-{tag}")
    victim_pid = await victim.fetchval("SELECT pg_backend_pid()")
    waiting = asyncio.create_task(victim.fetchval(f"SELECT count(*) FROM {table}"))
    sleeper = await connect(f"ops-it-slow-{tag}")
    sleeper_pid = await sleeper.fetchval("SELECT pg_backend_pid()")
    sleeping = asyncio.create_task(sleeper.execute("SELECT pg_sleep(30)"))

    async def seen():
        body = await overview(http, agent)
        blocked = {b["pid"]: b for b in body["blocked_sessions"]}
        running = {s["pid"] for s in body["slow_statements"]["running"]}
        return body if victim_pid in blocked and sleeper_pid in running else None

    body = await eventually(seen)
    [blocked] = [b for b in body["blocked_sessions"] if b["pid"] == victim_pid]
    assert blocked["blocked_by"] == [holder_pid]
    assert blocked["blockers"][0]["application_name"] == f"ops-it-holder-{tag}"
    assert blocked["blockers"][0]["state"] == "idle in transaction"
    assert blocked["usename"] == "reserva_availability" and table.split(".")[1] in blocked["waiting_for"]
    assert body["totals"]["blocked_sessions"] >= 1
    usage = {u["application_name"]: u for u in body["lock_usage"]}
    assert usage[f"ops-it-holder-{tag}"]["locks"] >= 1
    assert usage[f"ops-it-victim-{tag}"]["waiting_backends"] == 1
    assert holder_pid in {s["pid"] for s in body["idle_in_transaction"]}
    [slow] = [s for s in body["slow_statements"]["running"] if s["pid"] == sleeper_pid]
    assert "pg_sleep" in slow["query"] and slow["query_age_s"] * 1000 >= body["slow_statements"]["threshold_ms"]

    holder.terminate()
    assert await asyncio.wait_for(waiting, 10) == 0
    await victim.execute("SELECT pg_cancel_backend($1)", sleeper_pid)
    with pytest.raises(asyncpg.QueryCanceledError):
        await asyncio.wait_for(sleeping, 10)
    after = await overview(http, agent)
    assert victim_pid not in {b["pid"] for b in after["blocked_sessions"]}


async def test_the_overview_merges_the_snapshots_the_processes_publish(http, agent, infra, redis_namespace):
    service = f"ops-it-{uuid.uuid4().hex[:6]}"
    redis = make_redis(infra.redis_url)
    probe = LockProbe(service, LockBudget())
    try:
        for instance in ("a", "b"):
            await OpsSnapshotPublisher(service, redis_namespace, redis, probe, 5.0, instance=instance).publish()
        body = await overview(http, agent)
    finally:
        await redis.aclose()
    figures = {s["service"]: s for s in body["services"]}
    assert figures[service]["instances"] == 2
    assert figures[service]["outbox"] is None  # no outbox in these processes
    assert figures[service]["live_locks"]["backends"] == 0
    assert figures["gateway"]["instances"] >= 1  # the gateway publishes its own snapshot too
    assert figures["gateway"]["lock_probe"]["transactions"] >= 1  # the bootstrap agent, logins
