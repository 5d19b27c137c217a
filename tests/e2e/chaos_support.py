"""Shared by the contention proof, the chaos tests and the platform benchmark: many clients, an
attempt driver with bounded concurrency, a checker of the outcomes that knows nothing of how they
were produced (so a naive baseline can be run through it too), SQL checks of the invariants in the
database, and a platform of its own (own database, own redis-server) for tests that break things.

A unique module name (not `conftest`): it is imported by test modules of one folder."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from kit.provision import admin_dsn

HOUR = timedelta(hours=1)
# A booking's answer is "definite" when it is one of these; anything else (timeout, 5xx, another
# 409) is a failure of the platform's promise.
ACCEPTED, REJECTED_CODE = 201, "SLOT_UNAVAILABLE"
PAYMENT_OPEN = ("authorized", "pending", "requires_authorization", "unknown")
IN_FLIGHT_SAGA = ("holding", "authorizing", "confirming", "capturing", "compensating", "refunding")


# --- clients -----------------------------------------------------------------------------------


def mint_clients(count: int, roles: tuple[str, ...] = ("client",)) -> list[dict]:
    """`count` distinct client identities with access tokens signed like the gateway's own.

    Registration hashes a password with Argon2id (about 0.1-1 s of CPU each), so 1,000 real
    registrations would take minutes on two cores and the gateway has no bulk creation. The gateway
    authenticates requests by its signed token alone (the services never look users up), so a token
    issued with the platform's secret is exactly what a logged-in client presents."""
    from gateway.adapters.tokens import TokenIssuer
    from gateway.config import GatewaySettings

    settings = GatewaySettings()
    issuer = TokenIssuer(settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience, 3600)
    clients = []
    for _ in range(count):
        user_id = str(uuid.uuid4())
        clients.append({"id": user_id, "access_token": issuer.issue(user_id, frozenset(roles))})
    return clients


def bearer(client: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {client['access_token']}"}


# --- attempts, the driver and the checker ------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    index: int
    first_slot: int  # slots are numbered 0..n-1, one hour each
    slots: int  # 1, or 2 for a request spanning two adjacent slots

    @property
    def covered(self) -> range:
        return range(self.first_slot, self.first_slot + self.slots)

    def overlaps(self, other: Attempt) -> bool:
        return self.first_slot < other.first_slot + other.slots and other.first_slot < self.first_slot + self.slots


@dataclass
class Outcome:
    attempt: Attempt
    status: int | None  # HTTP status, None when no answer came (timeout, connection error)
    code: str = ""  # the problem's `code` for a refusal, or the exception's kind
    booking_id: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def rejected(self) -> bool:
        return self.status == 409 and self.code == REJECTED_CODE


def plan_attempts(count: int, slots: int, two_slot_share: float = 0.2, seed: int = 7) -> list[Attempt]:
    rng = random.Random(seed)
    attempts = []
    for i in range(count):
        width = 2 if rng.random() < two_slot_share else 1
        attempts.append(Attempt(i, rng.randrange(0, slots - width + 1), width))
    return attempts


async def drive(
    attempts: list[Attempt], book: Callable[[Attempt], Awaitable[Outcome]], concurrency: int = 64
) -> list[Outcome]:
    """Fire every attempt, at most `concurrency` in flight; a crash of `book` is an outcome too."""
    gate = asyncio.Semaphore(concurrency)

    async def one(attempt: Attempt) -> Outcome:
        async with gate:
            try:
                return await book(attempt)
            except Exception as error:  # recorded, never hidden: the checker reports it
                return Outcome(attempt, None, type(error).__name__)

    return list(await asyncio.gather(*(one(a) for a in attempts)))


@dataclass
class Verdict:
    taken_slots: set[int] = field(default_factory=set)
    double_bookings: list[tuple[int, int]] = field(default_factory=list)
    false_conflicts: list[int] = field(default_factory=list)
    indefinite: list[tuple[int, int | None, str]] = field(default_factory=list)
    untaken_requested_slots: set[int] = field(default_factory=set)

    @property
    def violations(self) -> list[str]:
        found = []
        if self.double_bookings:
            found.append(f"{len(self.double_bookings)} double bookings, e.g. {self.double_bookings[:5]}")
        if self.false_conflicts:
            found.append(f"{len(self.false_conflicts)} false conflicts, e.g. attempts {self.false_conflicts[:5]}")
        if self.indefinite:
            found.append(f"{len(self.indefinite)} indefinite answers, e.g. {self.indefinite[:5]}")
        if self.untaken_requested_slots:
            found.append(f"requested slots nobody got: {sorted(self.untaken_requested_slots)}")
        return found


def check_outcomes(outcomes: list[Outcome]) -> Verdict:
    """What the callers saw: accepted attempts never overlap, every refusal overlaps an accepted
    attempt, every answer is an acceptance or a SLOT_UNAVAILABLE refusal, every requested slot is taken."""
    verdict = Verdict()
    accepted = [o.attempt for o in outcomes if o.accepted]
    for i, a in enumerate(accepted):
        verdict.double_bookings += [(a.index, b.index) for b in accepted[i + 1 :] if a.overlaps(b)]
        verdict.taken_slots.update(a.covered)
    for o in outcomes:
        if o.rejected:
            if not any(o.attempt.overlaps(a) for a in accepted):
                verdict.false_conflicts.append(o.attempt.index)
        elif not o.accepted:
            verdict.indefinite.append((o.attempt.index, o.status, o.code))
    requested = {s for o in outcomes for s in o.attempt.covered}
    verdict.untaken_requested_slots = requested - verdict.taken_slots
    return verdict


# --- the REST booking call ---------------------------------------------------------------------


def slot_range(day: datetime, first_slot: int, slots: int) -> dict:
    start = day + first_slot * HOUR
    return {"start_time": _rfc3339(start), "end_time": _rfc3339(start + slots * HOUR)}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def a_free_day(days_min: int = 30, days_max: int = 330) -> datetime:
    """Midnight UTC of a random day inside the default booking window (a year ahead)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=random.randint(days_min, days_max))


def rest_booker(
    api: httpx.AsyncClient, place_id: str, day: datetime, clients: list[dict], token: str = "tok_success"
) -> Callable[[Attempt], Awaitable[Outcome]]:
    """Attempt i is made by clients[i % len(clients)] through POST /v1/bookings."""

    async def book(attempt: Attempt) -> Outcome:
        body = {
            "place_id": place_id,
            "ranges": [slot_range(day, attempt.first_slot, attempt.slots)],
            "guests": 1,
            "payment_method_token": token,
        }
        client = clients[attempt.index % len(clients)]
        reply = await api.post("/v1/bookings", json=body, headers=bearer(client))
        if reply.status_code == ACCEPTED:
            return Outcome(attempt, reply.status_code, booking_id=reply.json()["id"])
        code = reply.json().get("code", "") if reply.headers.get("content-type", "").endswith("json") else ""
        return Outcome(attempt, reply.status_code, code)

    return book


# --- what the database says --------------------------------------------------------------------


async def admin_connect(admin_url: str, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(admin_dsn(admin_url, database), timeout=10)


async def overlapping_live_entries(conn: asyncpg.Connection, place_id: str) -> int:
    """Pairs of live calendar rows of one unit of the place that overlap (the constraint forbids any)."""
    return await conn.fetchval(
        """SELECT count(*) FROM availability.calendar_entries a
             JOIN availability.calendar_entries b
               ON a.place_id = b.place_id AND a.unit = b.unit AND a.during && b.during
              AND (a.hold_id, a.id) < (b.hold_id, b.id)
            WHERE a.place_id = $1::uuid AND a.live AND b.live""",
        place_id,
    )


async def confirmed_slots(conn: asyncpg.Connection, place_id: str, day: datetime) -> list[int]:
    """Slot numbers covered by CONFIRMED bookings of the place, one entry per booking and slot."""
    rows = await conn.fetch(
        """SELECT lower(r.during) AS s, upper(r.during) AS e FROM booking.bookings b
             JOIN booking.booking_ranges r ON r.booking_id = b.id
            WHERE b.place_id = $1::uuid AND b.status = 'confirmed'""",
        place_id,
    )
    covered = []
    for row in rows:
        first, last = int((row["s"] - day) / HOUR), int((row["e"] - day) / HOUR)
        covered += list(range(first, last))
    return sorted(covered)


async def unsettled(conn: asyncpg.Connection, place_id: str) -> dict[str, int]:
    """Loose ends of the place's bookings: sagas still running, live holds of unconfirmed bookings,
    payments still open (authorized, pending, ...) whose booking is not confirmed, and money
    captured for bookings that are not confirmed."""
    row = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM booking.bookings WHERE place_id = $1::uuid
                 AND saga_state = ANY($2::text[])) AS sagas_running,
             (SELECT count(*) FROM booking.bookings WHERE place_id = $1::uuid
                 AND status IN ('held', 'requested')) AS not_terminal,
             (SELECT count(*) FROM availability.calendar_entries c
                 WHERE c.place_id = $1::uuid AND c.live AND c.kind = 'hold' AND NOT EXISTS (
                   SELECT 1 FROM booking.bookings b WHERE b.id::text = c.booking_id
                      AND b.status = 'confirmed')) AS live_holds_unconfirmed,
             (SELECT count(*) FROM payments.payments p JOIN booking.bookings b ON b.id = p.booking_id
                 WHERE b.place_id = $1::uuid AND p.status = ANY($3::text[])
                   AND b.status <> 'confirmed') AS open_payments_unconfirmed,
             (SELECT count(*) FROM payments.payments p JOIN booking.bookings b ON b.id = p.booking_id
                 WHERE b.place_id = $1::uuid AND p.captured_amount > p.refunded_amount
                   AND b.status <> 'confirmed') AS charged_unconfirmed""",
        place_id,
        list(IN_FLIGHT_SAGA),
        list(PAYMENT_OPEN),
    )
    return dict(row)


async def wait_until_settled(conn: asyncpg.Connection, place_id: str, timeout_s: float) -> dict[str, int]:
    """Polls `unsettled` until every count is zero (the sweepers and recovery worker had their
    turn) or the time is up; returns the last counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await unsettled(conn, place_id)
        if not any(counts.values()) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.5)


# --- a platform of its own ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on a free loopback port, no persistence: it can be stopped and
    restarted (same port, empty) without touching the Redis other tests share."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


# Short timers, so that what a fault leaves behind is swept within a test's bounds.
CHAOS_ENV = {
    "GATEWAY_BOOTSTRAP_AGENT_EMAIL": "agent@chaos.example.com",
    "GATEWAY_BOOTSTRAP_AGENT_PASSWORD": "chaos-agent-password",
    "GATEWAY_RATE_LIMIT_PER_USER": "100000/minute",
    "GATEWAY_RATE_LIMIT_PER_IP": "1000000/minute",
    "GATEWAY_RATE_LIMIT_LOGIN": "1000/minute",
    # Recovery takes over a flow only once the flow's own deadline (the gateway's 8 s) has ended it:
    # sooner, it would compensate a booking that the live flow is still confirming.
    "BOOKING_SAGA_RECOVERY_AFTER_S": "10",
    "BOOKING_SWEEPER_INTERVAL_S": "0.5",
    # The backstop for a hold whose maker died before recording it: it expires and is swept (one
    # minute, the shortest hold availability grants; far longer than any live flow's 8 s deadline).
    "BOOKING_HOLD_TTL_S": "60",
    "AVAILABILITY_SWEEPER_INTERVAL_S": "0.5",
    # A killed saga can leave an authorization in doubt with a void requested: the reconciler
    # settles the authorization and voids it.
    "PAYMENTS_RECONCILE_INTERVAL_S": "1",
    "PAYMENTS_RECONCILE_OLDER_THAN_S": "5",
    "NOTIFICATIONS_CLAIM_IDLE_MS": "3000",
    "NOTIFICATIONS_CLAIM_INTERVAL_S": "1",
    # Contact details notifications did not take are retried after 1, 2, 4... s.
    "GATEWAY_CONTACT_RETRY_BASE_S": "1",
    "GATEWAY_CONTACT_SHARE_INTERVAL_S": "0.5",
}


class ChaosPlatform:
    """The five processes on a database and a redis-server of their own, torn down afterwards."""

    def __init__(self, admin_url: str, extra_env: dict[str, str] | None = None):
        from kit.platform import Platform

        self.admin_url = admin_url
        self.database = f"reserva_chaos_{uuid.uuid4().hex[:8]}"
        self.redis = RedisServer()
        self.platform = Platform(
            admin_database_url=admin_url,
            database=self.database,
            redis_url=self.redis.url,
            redis_namespace=f"chaos_{uuid.uuid4().hex[:6]}",
            fixed_ports=False,
            extra_env={**CHAOS_ENV, **(extra_env or {})},
        )

    async def start(self) -> ChaosPlatform:
        from kit.cli import migrate_all

        self.redis.start()
        await migrate_all(self.admin_url, self.database)
        await asyncio.to_thread(self.platform.start, 120)
        return self

    async def stop(self) -> None:
        from kit.provision import drop_database

        await asyncio.to_thread(self.platform.stop)
        self.redis.stop()
        await drop_database(self.admin_url, self.database)


def process_alive(platform, name: str) -> bool:
    return platform.children[name].process.poll() is None


def environment_has_redis_server() -> bool:
    return bool(shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server"))
