"""Chaos on a platform of its own (own database, own redis-server, short sweeper and recovery
timers): the booking service SIGKILLed mid-saga, the payments service down, service backends
terminated mid-transaction, and a stuck session holding a place's lock. After each, every booking
ends in a terminal state with nothing half-done: no live hold of an unconfirmed booking, no open or
charged payment without a confirmed booking."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
from chaos_support import (
    ChaosPlatform,
    a_free_day,
    admin_connect,
    bearer,
    confirmed_slots,
    mint_clients,
    overlapping_live_entries,
    process_alive,
    slot_range,
    wait_until_settled,
)
from gateway_e2e_support import place_body
from waiting import wait_until

from kit.paths import REPO_ROOT
from kit.provision import service_database_url

pytestmark = [pytest.mark.xdist_group("chaos_services"), pytest.mark.asyncio, pytest.mark.timeout(180)]

# Answers a fault may legitimately cause at the gateway: success, or "try again later".
DEFINITE = {201, 503}


@pytest.fixture(scope="module")
async def chaos(infra):
    running = await ChaosPlatform(infra.admin_database_url).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(chaos):
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=chaos.platform.gateway_url, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture
async def db(chaos):
    conn = await admin_connect(chaos.admin_url, chaos.database)
    yield conn
    await conn.close()


async def a_place(api: httpx.AsyncClient) -> str:
    host = mint_clients(1, roles=("host",))[0]
    created = await api.post("/v1/places", json=place_body("INSTANT", unit_count=1), headers=bearer(host))
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def book(api: httpx.AsyncClient, client: dict, place_id: str, day, slot: int) -> httpx.Response:
    body = {"place_id": place_id, "ranges": [slot_range(day, slot, 1)], "guests": 1}
    return await api.post("/v1/bookings", json=body | {"payment_method_token": "tok_success"}, headers=bearer(client))


async def book_until_accepted(api, place_id: str, day, slot: int, timeout_s: float = 30) -> httpx.Response:
    """After a fault heals, the platform takes bookings again (breakers close, pools reconnect)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        reply = await book(api, mint_clients(1)[0], place_id, day, slot)
        if reply.status_code == 201 or asyncio.get_running_loop().time() > deadline:
            return reply
        await asyncio.sleep(0.5)


async def assert_nothing_half_done(db: asyncpg.Connection, place_id: str, day, accepted: list[str]) -> None:
    # Recovery (10 s), reconciliation (5 s) and hold expiry (60 s) each get their turn.
    loose_ends = await wait_until_settled(db, place_id, timeout_s=90)
    assert not any(loose_ends.values()), loose_ends
    assert await overlapping_live_entries(db, place_id) == 0
    statuses = dict(
        await db.fetch("SELECT id::text, status FROM booking.bookings WHERE id = ANY($1::uuid[])", accepted)
    )
    assert set(statuses.values()) <= {"confirmed"}, f"a booking answered 201 did not stay confirmed: {statuses}"
    slots = await confirmed_slots(db, place_id, day)
    assert len(slots) == len(set(slots)), slots
    # Every confirmed booking is whole: its money captured and its calendar row live.
    broken = await db.fetch(
        """SELECT b.id FROM booking.bookings b WHERE b.place_id = $1::uuid AND b.status = 'confirmed'
             AND (NOT EXISTS (SELECT 1 FROM payments.payments p WHERE p.booking_id = b.id AND p.status = 'captured')
               OR NOT EXISTS (SELECT 1 FROM availability.calendar_entries c
                               WHERE c.booking_id = b.id::text AND c.live))""",
        place_id,
    )
    assert not broken, f"confirmed bookings missing their payment or calendar row: {broken}"


async def test_booking_killed_mid_saga_and_restarted_leaves_every_booking_terminal(chaos, api, db):
    place_id, day, clients = await a_place(api), a_free_day(), mint_clients(40)

    async def attempt(slot: int) -> httpx.Response | str:
        try:
            return await book(api, clients[slot], place_id, day, slot)
        except httpx.HTTPError as error:
            return type(error).__name__

    in_flight = [asyncio.create_task(attempt(s)) for s in range(40)]
    # Kill once sagas are under way: bookings rows exist and some have reached later steps.
    for _ in range(100):
        if await db.fetchval("SELECT count(*) FROM booking.bookings WHERE place_id = $1::uuid", place_id) >= 8:
            break
        await asyncio.sleep(0.05)
    chaos.platform.kill("booking", signal.SIGKILL)
    replies = await asyncio.gather(*in_flight)
    chaos.platform.start_one("booking")

    answers = Counter(r.status_code if isinstance(r, httpx.Response) else r for r in replies)
    assert set(answers) <= DEFINITE, answers
    assert answers[503], f"the kill came too late to hit any booking: {answers}"
    accepted = [r.json()["id"] for r in replies if isinstance(r, httpx.Response) and r.status_code == 201]
    try:
        await assert_nothing_half_done(db, place_id, day, accepted)
    except AssertionError as failure:
        log = "".join(line[:400] for line in chaos.platform.children["booking"].output[-20:])
        raise AssertionError(f"{failure}\n--- booking log\n{log}") from None
    assert (await book_until_accepted(api, place_id, day, 45)).status_code == 201


async def test_payments_down_answers_503_with_retry_after_and_charges_nothing(chaos, api, db):
    place_id, day = await a_place(api), a_free_day()
    # Start from a healed platform (an earlier test of this module killed booking: the gateway's
    # breaker must have closed again), on a place of its own so this test's checks see none of it.
    assert (await book_until_accepted(api, await a_place(api), day, 0)).status_code == 201
    chaos.platform.kill("payments", signal.SIGKILL)
    try:
        replies = await asyncio.gather(*(book(api, mint_clients(1)[0], place_id, day, s) for s in range(8)))
        # Holds are released at once (or by the sweeper): the slots are free for others.
        live = await db.fetchval(
            "SELECT count(*) FROM availability.calendar_entries WHERE place_id = $1::uuid AND live", place_id
        )
    finally:
        chaos.platform.start_one("payments")
    assert live == 0
    try:
        await assert_nothing_half_done(db, place_id, day, accepted=[])
    except AssertionError as failure:
        log = "".join(line[:300] for line in chaos.platform.children["booking"].output[-12:])
        raise AssertionError(f"{failure}\n--- booking log\n{log}") from None
    charged = await db.fetchval(
        """SELECT count(*) FROM payments.payments p JOIN booking.bookings b ON b.id = p.booking_id
            WHERE b.place_id = $1::uuid AND p.captured_amount > 0""",
        place_id,
    )
    assert charged == 0
    assert (await book_until_accepted(api, place_id, day, 0)).status_code == 201
    # What the clients were told: "payments unavailable, retry later" -- not a booking.
    answers = [(r.status_code, r.headers.get("Retry-After"), _code_or_status(r)) for r in replies]
    assert all(a[0] == 503 and a[1] and int(a[1]) > 0 and a[2] == "PAYMENTS_UNAVAILABLE" for a in answers), answers


def _code_or_status(reply: httpx.Response) -> str:
    body = reply.json()
    return body.get("code") or f"booking status {body.get('status')}"


async def test_a_user_who_registers_while_notifications_is_down_is_known_there_once_it_is_back(chaos, api, db):
    email, password = f"late-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
    chaos.platform.kill("notifications", signal.SIGKILL)
    try:
        body = {"email": email, "password": password, "name": "Late Reader", "locale": "de-DE"}
        created = await api.post("/v1/auth/register", json=body)
        assert created.status_code == 201, created.text  # registration does not wait for notifications
        user_id = created.json()["id"]
        pending = "SELECT count(*) FROM identity.contact_shares WHERE user_id = $1::uuid"
        assert await db.fetchval(pending, user_id) == 1
    finally:
        chaos.platform.start_one("notifications")
    tokens = await api.post("/v1/auth/token", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}

    # The gateway's retry worker tells notifications; then the user's e-mail is there, and the
    # record of the untold change is gone.
    async def told():
        prefs = await api.get("/v1/notifications/preferences", headers=headers)
        return prefs.json() if prefs.status_code == 200 and prefs.json().get("email") == email else None

    prefs = await wait_until(told, timeout_s=60, interval_s=0.5)
    assert prefs["locale"] == "de-DE"
    assert await db.fetchval(pending, user_id) == 0


async def test_service_backends_terminated_mid_transaction_leave_no_half_written_state(chaos, api, db):
    place_id, day, clients = await a_place(api), a_free_day(), mint_clients(30)
    stop = asyncio.Event()
    terminated: list[int] = []

    async def terminator() -> None:
        while not stop.is_set():
            pids = await db.fetch(
                """SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity
                    WHERE datname = current_database() AND application_name IN ('booking', 'availability', 'payments')
                      AND state IN ('active', 'idle in transaction')"""
            )
            terminated.extend(r["pid"] for r in pids if r[0])
            await asyncio.sleep(0.05)

    killer = asyncio.create_task(terminator())
    try:
        replies = await asyncio.gather(*(book(api, clients[s], place_id, day, s) for s in range(30)))
    finally:
        stop.set()
        await killer
    assert terminated, "no backend was caught mid-transaction"
    answers = Counter(r.status_code for r in replies)
    # A terminated connection fails the call (503 after the unit of work rolled back) or is retried
    # (201); never a 500, never a success that did not happen.
    assert set(answers) <= DEFINITE, {r.status_code: r.text for r in replies if r.status_code not in DEFINITE}
    accepted = [r.json()["id"] for r in replies if r.status_code == 201]
    await assert_nothing_half_done(db, place_id, day, accepted)
    assert (await book_until_accepted(api, place_id, day, 40)).status_code == 201


async def stuck_session(chaos, place_id: str, idle_timeout_ms: int = 0) -> asyncpg.Connection:
    """A session of the availability role left idle in a transaction holding the place's lock."""
    dsn = service_database_url(chaos.admin_url, chaos.database, "availability").replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "chaos-stuck-session"})
    await conn.execute(f"SET idle_in_transaction_session_timeout = {idle_timeout_ms}")
    await conn.execute("BEGIN")
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", place_id)
    return conn


def locks_cli(chaos, *args: str) -> subprocess.CompletedProcess:
    common = ["--database", chaos.database, "--admin-url", chaos.admin_url, "--json"]
    return subprocess.run(
        [sys.executable, "-m", "kit.cli", "locks", args[0], *common, *args[1:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_stuck_session_holding_a_place_s_lock_is_released_by_the_operator_cli(chaos, api, db):
    place_id, day = await a_place(api), a_free_day()
    stuck = await stuck_session(chaos, place_id)
    try:
        blocked = asyncio.create_task(book(api, mint_clients(1)[0], place_id, day, 0))
        assert await _a_service_waits_for_the_lock(db), "no booking was blocked by the stuck session"
        answer = await blocked
        # Blocked until its lock timeout or deadline: answered cleanly, never a 500.
        assert answer.status_code in (409, 503, 504), answer.text

        idle = await asyncio.to_thread(locks_cli, chaos, "idle")
        assert idle.returncode == 0, idle.stderr
        pids = [b["pid"] for b in json.loads(idle.stdout) if b["application_name"] == "chaos-stuck-session"]
        assert len(pids) == 1, idle.stdout
        released = await asyncio.to_thread(locks_cli, chaos, "release", "--pid", str(pids[0]), "--grace", "1")
        assert released.returncode == 0, released.stdout + released.stderr
        assert {a["action"] for a in json.loads(released.stdout)} >= {"cancel", "terminate"}, released.stdout
        assert await _session_gone(db, pids[0])
    finally:
        stuck.terminate()
    assert (await book_until_accepted(api, place_id, day, 1, timeout_s=20)).status_code == 201
    await assert_nothing_half_done(db, place_id, day, accepted=[])


async def test_a_stuck_session_is_ended_by_the_idle_in_transaction_timeout(chaos, api, db):
    place_id, day = await a_place(api), a_free_day()
    stuck = await stuck_session(chaos, place_id, idle_timeout_ms=8000)
    try:
        blocked = asyncio.create_task(book(api, mint_clients(1)[0], place_id, day, 0))
        assert await _a_service_waits_for_the_lock(db), "no booking was blocked by the stuck session"
        answer = await blocked
        assert answer.status_code in (201, 409, 503, 504), answer.text
        assert (await book_until_accepted(api, place_id, day, 1, timeout_s=20)).status_code == 201
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await stuck.fetchval("SELECT 1")  # the server ended the session
    finally:
        stuck.terminate()
    assert process_alive(chaos.platform, "availability")
    await assert_nothing_half_done(db, place_id, day, accepted=[])


async def _a_service_waits_for_the_lock(db: asyncpg.Connection) -> bool:
    # Up to 20 s: the booking goes gateway -> booking -> availability first, on a loaded machine.
    for _ in range(400):
        waiting = await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                AND application_name = 'availability' AND wait_event_type = 'Lock' AND wait_event = 'advisory'"""
        )
        if waiting:
            return True
        await asyncio.sleep(0.05)
    return False


async def _session_gone(db: asyncpg.Connection, pid: int) -> bool:
    for _ in range(50):
        if not await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            return True
        await asyncio.sleep(0.1)
    return False
