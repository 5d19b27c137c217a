"""The operator's lock tools against a real PostgreSQL: a session of a service role takes a lock
and idles, another one waits on it; the tools find both, a dry run changes nothing, and release
frees the waiting statement. Sessions of other roles are never touched."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from kit import locks_cli
from kit.provision import admin_dsn, service_database_url


async def eventually(check, attempts: int = 200, pause_s: float = 0.05):
    """Poll `check` until it returns something truthy (the server needs a moment to show a wait)."""
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(pause_s)
    raise AssertionError("condition never became true")


@pytest.fixture
async def admin(infra, database):
    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    yield conn
    await conn.close()


class AvailabilitySessions:
    """Connections as the availability service's role, each named (application_name) by the test."""

    def __init__(self, dsn: str):
        self.dsn, self.opened = dsn, []

    async def __call__(self, application_name: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            self.dsn, server_settings={"application_name": application_name, "lock_timeout": "0"}
        )
        self.opened.append(conn)
        return conn

    def close_all(self) -> None:
        for conn in self.opened:
            conn.terminate()
        self.opened.clear()


@pytest.fixture
def connect_as_availability(infra, database):
    sessions = AvailabilitySessions(
        service_database_url(infra.admin_database_url, database, "availability").replace("+asyncpg", "")
    )
    yield sessions
    sessions.close_all()


@pytest.fixture
async def table(infra, connect_as_availability):
    """A table of the availability schema, owned by the availability role, private to one test."""
    name = f"availability.locks_cli_{uuid.uuid4().hex[:10]}"
    owner = await connect_as_availability("availability-setup")
    await owner.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
    await owner.execute(f"INSERT INTO {name} VALUES (1), (2)")
    yield name
    connect_as_availability.close_all()  # a session left holding a lock would block the DROP
    owner = await asyncpg.connect(connect_as_availability.dsn)
    try:
        await owner.execute(f"DROP TABLE IF EXISTS {name}")
    finally:
        await owner.close()


async def _stuck_holder(connect, table: str, mode: str = "ACCESS EXCLUSIVE") -> tuple[asyncpg.Connection, int]:
    holder = await connect(f"availability-stuck-{uuid.uuid4().hex[:6]}")
    await holder.execute("BEGIN")
    await holder.execute(f"LOCK TABLE {table} IN {mode} MODE")
    return holder, await holder.fetchval("SELECT pg_backend_pid()")


async def _waiting_victim(connect, admin, database, table: str, holder_pid: int):
    victim = await connect(f"availability-victim-{uuid.uuid4().hex[:6]}")
    victim_pid = await victim.fetchval("SELECT pg_backend_pid()")
    pending = asyncio.create_task(victim.fetchval(f"SELECT count(*) FROM {table}"))

    async def waits():
        sessions = {b.pid: b for b in await locks_cli.backends(admin, database)}
        return victim_pid in sessions and holder_pid in sessions[victim_pid].blocked_by

    await eventually(waits)
    return victim_pid, pending


def _find(tree, pid):
    for node in tree:
        if node.backend.pid == pid:
            return node
        found = _find(node.blocks, pid)
        if found:
            return found
    return None


async def test_the_tools_find_a_stuck_transaction_and_release_lets_the_blocked_statement_finish(
    admin, database, connect_as_availability, table
):
    _, holder_pid = await _stuck_holder(connect_as_availability, table)
    victim_pid, pending = await _waiting_victim(connect_as_availability, admin, database, table, holder_pid)

    root = _find(await locks_cli.blocking_tree(admin, database), holder_pid)
    assert root is not None and not root.backend.blocked_by
    assert [child.backend.pid for child in root.blocks] == [victim_pid]
    assert table.split(".")[1] in root.blocks[0].backend.waiting_for
    idle = await locks_cli.idle_in_transaction(admin, database)
    assert holder_pid in {b.pid for b in idle}
    assert holder_pid in {b.pid for b in await locks_cli.long_running(admin, database, threshold_s=0)}
    per_app = {a.application_name: a for a in locks_cli.per_application(await locks_cli.backends(admin, database))}
    stuck_app = next(b.application_name for b in idle if b.pid == holder_pid)
    assert per_app[stuck_app].locks >= 1 and per_app[stuck_app].backends == 1

    dry = await locks_cli.release(admin, database, pids=[holder_pid], grace_s=0, dry_run=True)
    assert [(a.pid, a.action, a.done) for a in dry] == [(holder_pid, "cancel", False), (holder_pid, "terminate", False)]
    assert holder_pid in {b.pid for b in await locks_cli.idle_in_transaction(admin, database)}
    assert not pending.done()

    # A session idle in its transaction ignores the cancel: it is terminated after the grace.
    actions = await locks_cli.release(admin, database, pids=[holder_pid], grace_s=0.3)
    assert [(a.action, a.done) for a in actions] == [("cancel", True), ("terminate", True)]
    assert await asyncio.wait_for(pending, timeout=30) == 2
    assert await eventually(lambda: _gone(admin, database, holder_pid))


async def _gone(admin, database, pid) -> bool:
    return pid not in {b.pid for b in await locks_cli.backends(admin, database)}


async def test_a_cancel_is_enough_when_the_holder_runs_a_statement_and_its_client_rolls_back(
    admin, database, connect_as_availability, table
):
    holder = await connect_as_availability(f"availability-busy-{uuid.uuid4().hex[:6]}")
    holder_pid = await holder.fetchval("SELECT pg_backend_pid()")

    async def slow_unit_of_work():
        async with holder.transaction():  # like the kit's unit of work: an error rolls it back
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            await holder.execute("SELECT pg_sleep(600)")

    work = asyncio.create_task(slow_unit_of_work())

    async def sleeping():
        sessions = {b.pid: b for b in await locks_cli.backends(admin, database)}
        return holder_pid in sessions and "pg_sleep" in sessions[holder_pid].query

    await eventually(sleeping)
    _, pending = await _waiting_victim(connect_as_availability, admin, database, table, holder_pid)

    actions = await locks_cli.release(admin, database, pids=[holder_pid], grace_s=60)
    assert [(a.action, a.done) for a in actions] == [("cancel", True), ("released", True)]
    with pytest.raises(asyncpg.QueryCanceledError):
        await work
    assert await asyncio.wait_for(pending, timeout=30) == 2
    assert await holder.fetchval("SELECT 1") == 1  # cancelled, not terminated


async def test_release_refuses_a_session_of_a_role_outside_the_platform(
    infra, admin, database, connect_as_availability, table
):
    outsider = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        await outsider.execute("BEGIN")
        await outsider.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
        outsider_pid = await outsider.fetchval("SELECT pg_backend_pid()")

        actions = await locks_cli.release(admin, database, pids=[outsider_pid], grace_s=0)
        assert [(a.pid, a.action, a.done) for a in actions] == [(outsider_pid, "refuse", False)]
        assert outsider_pid in {b.pid for b in await locks_cli.idle_in_transaction(admin, database)}
        assert await outsider.fetchval("SELECT 1") == 1

        # Selected by age, it is skipped while the platform's stuck session is chosen.
        _, holder_pid = await _stuck_holder(connect_as_availability, table, mode="ROW EXCLUSIVE")
        planned = await locks_cli.release(admin, database, older_than_s=0, grace_s=0, dry_run=True)
        by_pid = {}
        for action in planned:
            by_pid.setdefault(action.pid, []).append(action.action)
        assert by_pid[outsider_pid] == ["skip"]
        assert by_pid[holder_pid] == ["cancel", "terminate"]
        assert not any(a.done for a in planned)
    finally:
        await outsider.close()


async def test_the_command_line_prints_the_tree_as_json_and_refuses_with_a_failing_exit_code(
    infra, admin, database, connect_as_availability, table, capsys
):
    _, holder_pid = await _stuck_holder(connect_as_availability, table)
    victim_pid, pending = await _waiting_victim(connect_as_availability, admin, database, table, holder_pid)
    common = ["--database", database, "--admin-url", infra.admin_database_url, "--json"]

    assert await asyncio.to_thread(locks_cli.main, ["blocking", *common]) == 0
    tree = json.loads(capsys.readouterr().out)
    root = next(node for node in tree if node["pid"] == holder_pid)
    assert [child["pid"] for child in root["blocks"]] == [victim_pid]

    assert await asyncio.to_thread(locks_cli.main, ["status", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["capacity"]["capacity"] == status["capacity"]["max_locks_per_transaction"] * (
        status["capacity"]["max_connections"] + status["capacity"]["max_prepared_transactions"]
    )
    assert holder_pid in {b["pid"] for b in status["backends"]}

    admin_pid = await admin.fetchval("SELECT pg_backend_pid()")
    assert await asyncio.to_thread(locks_cli.main, ["release", "--pid", str(admin_pid), *common]) == 1
    assert json.loads(capsys.readouterr().out)[0]["action"] == "refuse"

    assert await asyncio.to_thread(locks_cli.main, ["release", "--pid", str(holder_pid), "--grace", "0", *common]) == 0
    assert [a["action"] for a in json.loads(capsys.readouterr().out)] == ["cancel", "terminate"]
    assert await asyncio.wait_for(pending, timeout=30) == 2
