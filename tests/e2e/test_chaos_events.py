"""Chaos around the event path, on a platform with a redis-server of its own: Redis stopped and
restarted (empty) during bookings, and the notifications consumer killed with messages pending.
In both, every confirmed booking's e-mail reaches the client exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from chaos_support import (
    ChaosPlatform,
    a_free_day,
    admin_connect,
    bearer,
    mint_clients,
    slot_range,
)
from gateway_e2e_support import PASSWORD, place_body

pytestmark = [pytest.mark.xdist_group("chaos_events"), pytest.mark.asyncio, pytest.mark.timeout(180)]

CLIENTS = 6


@pytest.fixture(scope="module")
async def chaos(infra):
    running = await ChaosPlatform(infra.admin_database_url).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
async def people(chaos):
    """A host (minted token) and registered clients (real e-mail addresses known to notifications)."""
    async with httpx.AsyncClient(base_url=chaos.platform.gateway_url, timeout=30) as api:
        clients = []
        for _ in range(CLIENTS):
            email = f"chaos{uuid.uuid4().hex[:10]}@example.com"
            body = {"email": email, "password": PASSWORD, "name": "Chaos Client", "roles": ["client"]}
            created = await api.post("/v1/auth/register", json=body)
            assert created.status_code == 201, created.text
            clients.append({"id": created.json()["id"], "email": email})
    host = mint_clients(1, roles=("host",))[0]
    for client in clients:
        client["access_token"] = _token_for(client["id"])
    conn = await admin_connect(chaos.admin_url, chaos.database)
    try:
        # Registration shares the address with notifications best effort: make sure it arrived.
        known = await conn.fetchval(
            "SELECT count(*) FROM notifications.preferences WHERE user_id = ANY($1::uuid[]) AND email <> ''",
            [c["id"] for c in clients],
        )
    finally:
        await conn.close()
    assert known == CLIENTS, "notifications did not receive every client's e-mail address"
    return {"host": host, "clients": clients}


def _token_for(user_id: str) -> str:
    from gateway.adapters.tokens import TokenIssuer
    from gateway.config import GatewaySettings

    s = GatewaySettings()
    return TokenIssuer(s.jwt_secret, s.jwt_issuer, s.jwt_audience, 3600).issue(user_id, frozenset({"client"}))


async def _place(api: httpx.AsyncClient, host: dict) -> str:
    created = await api.post("/v1/places", json=place_body("INSTANT", unit_count=1), headers=bearer(host))
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _book(api, client, place_id, day, slot) -> httpx.Response:
    body = {"place_id": place_id, "ranges": [slot_range(day, slot, 1)], "guests": 1}
    return await api.post("/v1/bookings", json=body | {"payment_method_token": "tok_success"}, headers=bearer(client))


def confirmation_count(sink, email: str, booking_id: str) -> int:
    """E-mails telling `email` that `booking_id` is confirmed."""
    found = 0
    for message in sink.to(email):
        if message["X-Reserva-Event-Type"] != "booking.confirmed":
            continue
        text = message.get_body(("plain",)).get_content() if message.is_multipart() else message.get_content()
        found += booking_id in text
    return found


async def wait_for_emails(sink, expected: dict[str, str], timeout_s: float) -> dict[str, int]:
    """Waits until each booking id in `expected` (id -> e-mail) has its confirmation, then a little
    longer so that a duplicate would show; returns the count per booking."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(confirmation_count(sink, email, bid) for bid, email in expected.items()):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)  # a duplicate delivery (a re-claimed message sent twice) would land now
    return {bid: confirmation_count(sink, email, bid) for bid, email in expected.items()}


async def test_redis_stopped_and_restarted_during_bookings_loses_no_event(chaos, people):
    platform, day = chaos.platform, a_free_day()
    clients = people["clients"]
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as api:
        place_id = await _place(api, people["host"])
        answers: list[tuple[int, str, str]] = []  # (status, booking id or problem code, client e-mail)

        async def book(slot: int) -> None:
            client = clients[slot % len(clients)]
            reply = await _book(api, client, place_id, day, slot)
            detail = reply.json().get("id" if reply.status_code == 201 else "code", "")
            answers.append((reply.status_code, detail, client["email"]))

        await asyncio.gather(*(book(s) for s in range(0, 4)))  # Redis up
        # Redis runs without persistence: what it held when stopped is gone for good, so the
        # events of these first bookings must have been consumed before it stops.
        before = {bid: email for status, bid, email in answers if status == 201}
        assert len(before) == 4, answers
        assert await wait_for_emails(platform.smtp_sink, before, timeout_s=30) == dict.fromkeys(before, 1)
        chaos.redis.stop()
        await asyncio.gather(*(book(s) for s in range(4, 10)))  # Redis down
        await asyncio.sleep(1)
        chaos.redis.start()  # back, and empty: streams and consumer groups are gone
        await asyncio.gather(*(book(s) for s in range(10, 14)))  # Redis back

    assert [a[0] for a in answers] == [201] * 14, answers
    expected = {bid: email for _, bid, email in answers}
    counts = await wait_for_emails(platform.smtp_sink, expected, timeout_s=40)
    assert counts == dict.fromkeys(expected, 1), f"{counts}\n{await _event_path_state(chaos)}"


async def test_a_killed_consumer_s_pending_messages_are_reclaimed_and_sent_once(chaos, people):
    platform, day = chaos.platform, a_free_day()
    clients = people["clients"]
    platform.kill("notifications", signal.SIGKILL)
    try:
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as api:
            place_id = await _place(api, people["host"])
            replies = [await _book(api, clients[s % len(clients)], place_id, day, s) for s in range(6)]
        assert [r.status_code for r in replies] == [201] * 6, [r.text for r in replies]
        expected = {r.json()["id"]: clients[s % len(clients)]["email"] for s, r in enumerate(replies)}
        # The dead consumer had read them: they sit in its pending list, never to be acknowledged.
        pending = await _read_as_dead_consumer(chaos, expected)
        assert pending >= len(expected)
    finally:
        platform.start_one("notifications")
    counts = await wait_for_emails(platform.smtp_sink, expected, timeout_s=40)
    assert counts == dict.fromkeys(expected, 1), f"{counts}\n{await _event_path_state(chaos)}"


async def _read_as_dead_consumer(chaos, booking_ids: dict[str, str]) -> int:
    """XREADGROUP the booking stream as a consumer that then vanishes, until every booking's
    confirmation event has been delivered to it (the outbox relay publishes asynchronously)."""
    namespace = chaos.platform.redis_namespace
    stream, group = f"{namespace}:events:booking", "notifications"
    redis = aioredis.from_url(chaos.redis.url)
    taken = 0
    try:
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except aioredis.ResponseError:
            pass  # the group exists already
        deadline, seen = time.monotonic() + 20, set()
        while time.monotonic() < deadline and not set(booking_ids) <= seen:
            replies = await redis.xreadgroup(group, "dead-consumer", {stream: ">"}, count=100, block=500)
            for _, messages in replies or []:
                for _, fields in messages:
                    taken += 1
                    raw = fields.get(b"envelope", b"")
                    seen.update(bid for bid in booking_ids if bid.encode() in raw)
        assert set(booking_ids) <= seen, "the booking events never reached the stream"
    finally:
        await redis.aclose()
    return taken


async def _event_path_state(chaos) -> str:
    """What a failure message needs: the streams, their groups, and the services' last log lines."""
    redis = aioredis.from_url(chaos.redis.url)
    lines = []
    try:
        for service in ("booking", "payments", "availability"):
            stream = f"{chaos.platform.redis_namespace}:events:{service}"
            length = await redis.xlen(stream)
            try:
                groups = await redis.xinfo_groups(stream)
            except aioredis.ResponseError as error:
                groups = repr(error)
            lines.append(f"{stream}: {length} entries, groups {groups}")
    finally:
        await redis.aclose()
    for name in ("notifications", "booking"):
        lines.append(f"--- {name} log (last lines)")
        lines += [line.rstrip()[:300] for line in chaos.platform.children[name].output[-15:]]
    return "\n".join(lines)
