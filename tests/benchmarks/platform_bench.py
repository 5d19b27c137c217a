"""Platform benchmark through the REST gateway: `.venv/bin/python tests/benchmarks/platform_bench.py
[--calls N] [--clients C] [--open-seconds S] [--mixed-calls M] [--contended-calls K]`.

Starts the whole platform (four services + gateway, each its own process) on a throwaway database:
  1. REST booking creation, closed loop, C clients (default 64): the maximum sustained throughput;
     every call books a distinct slot of one of 100 INSTANT places (low contention);
  2. the same at an open-loop offered load of half that throughput: p99 with queueing visible;
  3. a mixed workload at C clients: search 80%, create 15%, cancel 5%;
  4. REST booking creation at high contention: K attempts (default 640) by C clients on the 10
     one-hour slots of one place; exactly 10 may win, every other answer must be 409
     SLOT_UNAVAILABLE;
then checks by SQL that no two live calendar rows of a place overlap and no place has overlapping
confirmed bookings. Errors are counted by kind (HTTP status and problem code). Client identities are
access tokens signed with the platform's secret (registration's Argon2 would dominate otherwise);
each has an e-mail address, so the notifications the bookings cause are sent over SMTP (to a mail
catcher in a process of its own), as in production.
Writes tests/benchmarks/results/platform.json and prints a Markdown table. Locks per write
transaction come from the probes inside the service processes (the deployed 5 % sample): each
publishes, every half second here, a histogram of the write transactions it measured since it
started (kit.ops_snapshot), and a scenario's figures are the difference between the histograms read
before it and after it (its asynchronous aftermath, events and e-mails, included)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))

from benchlib import (  # noqa: E402
    PRODUCTION_LOCK_PROBE_SAMPLE_RATE,
    closed_loop,
    load_generator_without_pauses,
    markdown_table,
    open_loop,
    throwaway_database,
    write_results,
)
from chaos_support import admin_connect, bearer, mint_clients  # noqa: E402

from kit import event_loop  # noqa: E402

PLACES = 100
CITY = f"Benchcity{uuid.uuid4().hex[:6]}"
CONTENDED_SLOTS = 10
MEASURED_SERVICES = ("availability", "booking", "payments", "notifications")
SNAPSHOT_INTERVAL_S = 0.5


class Refused(Exception):
    """An answer other than the expected one; its kind is the status and the problem code."""

    def __init__(self, reply: httpx.Response):
        code = ""
        if reply.headers.get("content-type", "").endswith("json"):
            code = reply.json().get("code", "")
        super().__init__(f"{reply.status_code} {code}".strip())


def classify(error: BaseException) -> str:
    return str(error) if isinstance(error, Refused) else type(error).__name__


class Slots:
    """Distinct (place, hour) slots, handed out in order: no two creations ever compete."""

    def __init__(self, places: list[str]):
        self.places, self.counter = places, itertools.count()
        self.first_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=20)

    def next(self) -> tuple[str, dict]:
        i = next(self.counter)
        place, hour_index = self.places[i % len(self.places)], i // len(self.places)
        start = self.first_day + timedelta(days=hour_index // 24, hours=hour_index % 24)
        iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
        return place, {"start_time": iso(start), "end_time": iso(start + timedelta(hours=1))}


class Connections:
    """The load generator's HTTP clients: one keep-alive connection each, lent to one request at a
    time (a new one when all are busy). One shared httpx client with a pool of 128 connections
    scanned every idle connection (a poll system call each) for every request: the driver then
    spent more CPU than the gateway, on the same two cores as the platform."""

    def __init__(self, base_url: str):
        self.base_url, self.idle, self.every = base_url, [], []

    async def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        if self.idle:
            client = self.idle.pop()
        else:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            client = httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits)
            self.every.append(client)
        try:
            return await client.request(method, url, **kwargs)
        finally:
            self.idle.append(client)

    async def post(self, url: str, **kwargs) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def patch(self, url: str, **kwargs) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def get(self, url: str, **kwargs) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def aclose(self) -> None:
        for client in self.every:
            await client.aclose()


async def create(api: Connections, client: dict, slots: Slots) -> str:
    place, when = slots.next()
    body = {"place_id": place, "ranges": [when], "guests": 1, "payment_method_token": "tok_success"}
    reply = await api.post("/v1/bookings", json=body, headers=bearer(client))
    if reply.status_code != 201:
        raise Refused(reply)
    return reply.json()["id"]


async def search(api: Connections, client: dict, day: datetime) -> None:
    params = {
        "city": CITY,
        "start_time": day.isoformat(),
        "end_time": (day + timedelta(days=1)).isoformat(),
        "duration_minutes": 60,
        "page_size": 20,
    }
    reply = await api.get("/v1/search", params=params, headers=bearer(client))
    if reply.status_code != 200:
        raise Refused(reply)


async def cancel(api: Connections, owner: dict, booking_id: str) -> None:
    reply = await api.post(f"/v1/bookings/{booking_id}:cancel", json={"reason": "bench"}, headers=bearer(owner))
    if reply.status_code != 200:
        raise Refused(reply)


async def write_locks_so_far(redis, namespace: str, timeout_s: float = 10.0) -> Counter:
    """Every write transaction the services' probes have measured since they started, by its relation
    + advisory locks, from each service's first operations snapshot published after this call."""
    from kit.ops_snapshot import read_snapshots

    asked, deadline = time.time(), time.monotonic() + timeout_s
    while True:
        fresh = {
            s["service"]: s
            for s in await read_snapshots(redis, namespace)
            if s["service"] in MEASURED_SERVICES and s["published_at"] > asked
        }
        if len(fresh) == len(MEASURED_SERVICES):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no fresh operations snapshot from {set(MEASURED_SERVICES) - set(fresh)}")
        await asyncio.sleep(SNAPSHOT_INTERVAL_S / 5)
    total: Counter = Counter()
    for snapshot in fresh.values():
        total.update({int(locks): count for locks, count in snapshot["write_locks"].items()})
    return total


def locks_between(before: Counter, after: Counter) -> list[int]:
    """The locks of each write transaction measured between two readings of the histograms."""
    return sorted((after - before).elements())


async def give_addresses(api: Connections, users: list[dict]) -> None:
    """An e-mail address for each user (minted identities have none): their booking notifications
    are then rendered and sent over SMTP instead of failing at once for want of an address."""

    async def one(user: dict) -> None:
        body = {"email": f"user-{user['id']}@bench.example"}
        reply = await api.patch("/v1/notifications/preferences", json=body, headers=bearer(user))
        if reply.status_code != 200:
            raise Refused(reply)

    for i in range(0, len(users), 32):
        await asyncio.gather(*(one(u) for u in users[i : i + 32]))


async def contend(api: Connections, client: dict, place: str, start: datetime, outcome: Counter) -> None:
    """One attempt at a contended slot: a booking or a refusal as taken are the defined answers."""
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    when = {"start_time": iso(start), "end_time": iso(start + timedelta(hours=1))}
    body = {"place_id": place, "ranges": [when], "guests": 1, "payment_method_token": "tok_success"}
    reply = await api.post("/v1/bookings", json=body, headers=bearer(client))
    if reply.status_code == 201:
        outcome["booked"] += 1
    elif reply.status_code == 409 and reply.json().get("code") == "SLOT_UNAVAILABLE":
        outcome["refused as taken"] += 1
    else:
        raise Refused(reply)


def start_mail_catcher() -> tuple[subprocess.Popen, int]:
    """The SMTP sink in a process of its own: in the load generator's it would take the generator's
    CPU and event loop for every message it receives."""
    sink = subprocess.Popen(
        [sys.executable, "-m", "notifications.adapters.smtp_sink", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = sink.stdout.readline()
    if not line.startswith("READY "):
        sink.kill()
        raise RuntimeError(f"the mail catcher did not start: {line!r}")
    return sink, int(line.split()[1])


async def settled(admin_url: str, database: str, timeout_s: float = 60.0) -> float:
    """Wait until the platform has digested the previous scenario: every service's outbox published, no
    notification queued or being sent, and no new notification appearing (the consumer caught up)
    for three polls in a row. The asynchronous work a saturating scenario leaves behind (events,
    e-mails) would otherwise be measured as the next scenario's latency. Returns the seconds waited."""
    conn = await admin_connect(admin_url, database)
    started, calm, last = time.perf_counter(), 0, None
    try:
        schemas = [r["table_schema"] for r in await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        )]  # fmt: skip
        backlog_sql = " + ".join(
            f"(SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL)" for schema in schemas
        )
        while time.perf_counter() - started < timeout_s:
            backlog = await conn.fetchval(f"SELECT {backlog_sql}")
            counts = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status IN ('queued', 'sending')) AS busy, count(*) AS total "
                "FROM notifications.notifications"
            )
            calm = calm + 1 if backlog == 0 and counts["busy"] == 0 and counts["total"] == last else 0
            if calm >= 3:
                break
            last = counts["total"]
            await asyncio.sleep(0.2)
        else:
            print(f"the platform did not settle within {timeout_s:.0f} s; going on", file=sys.stderr)
    finally:
        await conn.close()
    return round(time.perf_counter() - started, 1)


async def final_checks(admin_url: str, database: str, contended_place: str) -> dict[str, int]:
    """No double booking (calendar rows, confirmed bookings), the contended place's confirmed
    bookings, and what became of the e-mails."""
    conn = await admin_connect(admin_url, database)
    try:
        contended = await conn.fetchval(
            "SELECT count(*) FROM booking.bookings WHERE place_id = $1 AND status = 'confirmed'",
            uuid.UUID(contended_place),
        )
        calendar = await conn.fetchval(
            """SELECT count(*) FROM availability.calendar_entries a JOIN availability.calendar_entries b
                 ON a.place_id = b.place_id AND a.unit = b.unit AND a.during && b.during
                AND (a.hold_id, a.id) < (b.hold_id, b.id) WHERE a.live AND b.live"""
        )
        confirmed = await conn.fetchval(
            """SELECT count(*) FROM booking.booking_ranges ra JOIN booking.booking_ranges rb
                 ON ra.place_id = rb.place_id AND ra.during && rb.during AND ra.booking_id < rb.booking_id
               JOIN booking.bookings a ON a.id = ra.booking_id AND a.status = 'confirmed'
               JOIN booking.bookings b ON b.id = rb.booking_id AND b.status = 'confirmed'"""
        )
        total = await conn.fetchval("SELECT count(*) FROM booking.bookings WHERE status = 'confirmed'")
        emails = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
                      count(*) FILTER (WHERE status = 'failed') AS failed
                 FROM notifications.notifications WHERE channel = 'email'"""
        )
    finally:
        await conn.close()
    return {
        "overlapping_live_calendar_rows": calendar,
        "overlapping_confirmed_bookings": confirmed,
        "confirmed": total,
        "contended_place_confirmed": contended,
        "emails_sent": emails["sent"],
        "emails_failed": emails["failed"],
    }


async def run(args: argparse.Namespace) -> dict:
    from kit.cache import make_redis
    from kit.infra import ensure_infrastructure
    from kit.paths import SCHEMAS
    from kit.platform import Platform

    admin_url, database, drop = await throwaway_database(list(SCHEMAS))
    mail_catcher, smtp_port = start_mail_catcher()
    platform = Platform(
        admin_database_url=admin_url,
        database=database,
        redis_url=ensure_infrastructure().redis_url,
        redis_namespace=f"bench_{uuid.uuid4().hex[:6]}",
        fixed_ports=False,
        extra_env={
            "GATEWAY_RATE_LIMIT_PER_USER": "1000000/minute",
            "GATEWAY_RATE_LIMIT_PER_IP": "100000000/minute",
            "BOOKING_MAX_PENDING_PER_CLIENT": "1000000",
            "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "NOTIFICATIONS_SMTP_PORT": str(smtp_port),
            # As deployed (deploy/base): the probe measures a share of the services' transactions.
            **{
                f"{service.upper()}_LOCK_PROBE_SAMPLE_RATE": str(PRODUCTION_LOCK_PROBE_SAMPLE_RATE)
                for service in MEASURED_SERVICES
            },
            # Their lock histograms, read between scenarios.
            **{f"{service.upper()}_OPS_SNAPSHOT_INTERVAL_S": str(SNAPSHOT_INTERVAL_S) for service in MEASURED_SERVICES},
        },
    )
    try:  # a platform that fails to start is stopped too: no process, catcher or database left over
        await asyncio.to_thread(platform.start, 120)
        api = Connections(platform.gateway_url)
        redis = make_redis(platform.redis_url, timeout_s=10)

        async def locks_now() -> Counter:
            return await write_locks_so_far(redis, platform.redis_namespace)

        try:
            return await scenarios(api, args, admin_url, database, locks_now)
        finally:
            await api.aclose()
            await redis.aclose()
    finally:
        await asyncio.to_thread(platform.stop)
        mail_catcher.terminate()
        mail_catcher.wait()
        await drop()


async def scenarios(api: Connections, args: argparse.Namespace, admin_url: str, database: str, locks_now) -> dict:
    from gateway_e2e_support import place_body

    host = mint_clients(1, roles=("host",))[0]
    places = []
    for _ in range(PLACES):
        reply = await api.post("/v1/places", json=place_body("INSTANT", city=CITY, unit_count=1), headers=bearer(host))
        assert reply.status_code == 201, reply.text
        places.append(reply.json()["id"])
    slots, clients = Slots(places), mint_clients(args.clients * 4)
    await give_addresses(api, [host, *clients])
    client_of = lambda i: clients[i % len(clients)]  # noqa: E731

    # Warm-up: connections, caches, first-call costs.
    await closed_loop("warm-up", lambda i: create(api, client_of(i), slots), args.clients, args.clients * 2)
    await settled(admin_url, database)
    before_closed = await locks_now()
    with load_generator_without_pauses():
        closed = await closed_loop(
            f"REST create booking, closed loop, {args.clients} clients",
            lambda i: create(api, client_of(i), slots),
            args.clients,
            args.calls,
            classify,
        )
    throughput = closed.calls / closed.seconds
    offered = max(1.0, throughput / 2)
    settle_open = await settled(admin_url, database)
    closed.locks = locks_between(before_closed, before_open := await locks_now())
    with load_generator_without_pauses():
        opened = await open_loop(
            f"REST create booking, open loop at {offered:.0f}/s (half the max)",
            lambda i: create(api, client_of(i), slots),
            offered,
            args.open_seconds,
        )

    made: list[tuple[dict, str]] = []
    rng = random.Random(3)
    search_day = slots.first_day + timedelta(days=2)

    async def mixed(i: int) -> None:
        roll, client = rng.random(), client_of(i)
        if roll < 0.80:
            await search(api, client, search_day)
        elif roll < 0.95 or not made:
            made.append((client, await create(api, client, slots)))
        else:
            owner, booking_id = made.pop(rng.randrange(len(made)))
            await cancel(api, owner, booking_id)

    settle_mixed = await settled(admin_url, database)
    opened.locks = locks_between(before_open, before_mixed := await locks_now())
    with load_generator_without_pauses():
        mix = await closed_loop(
            f"mixed (search 80%, create 15%, cancel 5%), {args.clients} clients",
            mixed,
            args.clients,
            args.mixed_calls,
            classify,
        )
    settle_contended = await settled(admin_url, database)
    mix.locks = locks_between(before_mixed, before_contended := await locks_now())

    # High contention: every client after the same 10 slots of one place.
    reply = await api.post("/v1/places", json=place_body("INSTANT", city=CITY, unit_count=1), headers=bearer(host))
    assert reply.status_code == 201, reply.text
    hot_place, outcome = reply.json()["id"], Counter()
    hot_day = slots.first_day + timedelta(days=40)  # after every slot the other scenarios took
    with load_generator_without_pauses():
        contended = await closed_loop(
            f"REST create booking, high contention ({CONTENDED_SLOTS} slots of one place), {args.clients} clients",
            lambda i: contend(api, client_of(i), hot_place, hot_day + timedelta(hours=i % CONTENDED_SLOTS), outcome),
            args.clients,
            args.contended_calls,
            classify,
        )
    await settled(admin_url, database)
    contended.locks = locks_between(before_contended, await locks_now())
    checks = await final_checks(admin_url, database, hot_place)
    closed.notes = f"max sustained throughput; {checks['confirmed']} confirmed bookings in the run"
    opened.notes = (
        "latency from the scheduled start (queueing included); target p99 <= 100 ms; started once the "
        f"closed loop's events and e-mails were digested ({settle_open} s)"
    )
    mix.notes = f"started once the open loop's work was digested ({settle_mixed} s)"
    contended.notes = (
        f"{outcome['booked']} booked, {outcome['refused as taken']} refused as taken (409 SLOT_UNAVAILABLE); "
        f"{checks['contended_place_confirmed']} confirmed for {CONTENDED_SLOTS} slots; started once the mixed "
        f"workload's work was digested ({settle_contended} s)"
    )
    rows = [closed.summary(), opened.summary(), mix.summary(), contended.summary()]
    return {"rows": rows, "checks": checks, "max_throughput_per_s": round(throughput, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--open-seconds", type=float, default=20.0)
    parser.add_argument("--mixed-calls", type=int, default=1500)
    parser.add_argument("--contended-calls", type=int, default=640)
    args = parser.parse_args()
    result = event_loop.run(run(args))
    path = write_results(
        "platform",
        result["rows"],
        {"checks": result["checks"], "max_throughput_per_s": result["max_throughput_per_s"]},
    )
    print(markdown_table(result["rows"]))
    print(f"\nchecks: {result['checks']}\nwritten: {path}")
    checks = result["checks"]
    bad = checks["overlapping_live_calendar_rows"] + checks["overlapping_confirmed_bookings"]
    sys.exit(1 if bad or checks["contended_place_confirmed"] > CONTENDED_SLOTS else 0)


if __name__ == "__main__":
    main()
