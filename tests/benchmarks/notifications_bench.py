"""Notifications benchmark: `.venv/bin/python tests/benchmarks/notifications_bench.py [--burst N] [--rate R]
[--seconds S]`.

In a throwaway database: the notifications service in-process (consumer, sender, workers) on real
PostgreSQL and Redis Streams, sending to a real local SMTP server (aiosmtpd). Each event is a
reserva.booking.v1.BookingConfirmed envelope XADDed to the booking stream, for a client with an
e-mail address (one e-mail + one in-app notification per event).
  1. burst: N events published at once; events/second from stream to recorded notification (rows
     committed) and to e-mail received;
  2. open loop: R events/second for S seconds; latency from XADD to the e-mail arriving in the SMTP
     server, p50/p99;
  3. the e-mail sender alone against a relay that requires STARTTLS and a login (aiosmtpd in its
     own process, a certificate of a test authority from trustme): kept connections against a
     connection per message (keep=0, the sender before it kept them), interleaved, 4 sends at once.
Prints Markdown and writes tests/benchmarks/results/notifications.json (with locks per transaction)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration" / "notifications"))

from benchlib import (  # noqa: E402
    Scenario,
    as_deployed_process,
    machine,
    markdown_table,
    throwaway_database,
    write_results,
)

from kit import event_loop  # noqa: E402


def _envelope(client: str) -> bytes:
    from google.protobuf import any_pb2, timestamp_pb2

    from reserva.booking.v1 import events_pb2
    from reserva.events.v1 import envelope_pb2
    from reserva.type.v1 import types_pb2

    start = timestamp_pb2.Timestamp()
    start.FromDatetime(datetime.now(UTC) + timedelta(days=7))
    end = timestamp_pb2.Timestamp(seconds=start.seconds + 7200)
    booking_id = str(uuid.uuid4())
    payload = events_pb2.BookingConfirmed(
        booking_id=booking_id,
        client_id=client,
        host_id=str(uuid.uuid4()),
        place_id=str(uuid.uuid4()),
        ranges=[types_pb2.TimeRange(start_time=start, end_time=end)],
        price=types_pb2.Money(amount_minor=9900, currency_code="EUR"),
    )
    packed = any_pb2.Any()
    packed.Pack(payload)
    occurred = timestamp_pb2.Timestamp()
    occurred.GetCurrentTime()
    return envelope_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type="booking.confirmed",
        source_service="booking",
        aggregate_id=booking_id,
        sequence=1,
        occurred_time=occurred,
        payload=packed,
    ).SerializeToString()


async def _users(svc, count: int) -> list[str]:
    from kit.identity import SYSTEM
    from notifications.service_layer.handlers import PreferencesUpdate, update_preferences

    users = [str(uuid.uuid4()) for _ in range(count)]
    gate = asyncio.Semaphore(16)

    async def one(user: str) -> None:
        async with gate:
            update = PreferencesUpdate(user, ("email",), {"email": f"u-{user}@bench.example"})
            await update_preferences(svc, SYSTEM, str(uuid.uuid4()), "bench", update)

    await asyncio.gather(*(one(u) for u in users))
    return users


async def _recorded(svc) -> int:
    from sqlalchemy import text

    async with svc.uow() as uow:
        return (await uow.session.execute(text("SELECT count(*) FROM notifications.processed_events"))).scalar_one()


async def _wait(predicate, timeout_s: float = 300.0, interval_s: float = 0.005) -> float:
    deadline = time.perf_counter() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(interval_s)


def _arrivals(mbox_path: str) -> tuple[dict[str, float], int]:
    """user id -> arrival time (epoch s) of its e-mail, and the number of e-mails."""
    import mailbox

    box = mailbox.mbox(mbox_path)
    found, count = {}, 0
    for message in box:
        count += 1
        found[str(message["To"]).split("@")[0][2:]] = float(message["X-Sink-Received-At"])
    box.close()
    return found, count


async def _emails_sent(svc) -> int:
    from sqlalchemy import text

    async with svc.uow() as uow:
        query = "SELECT count(*) FROM notifications.notifications WHERE channel = 'email' AND status = 'sent'"
        return (await uow.session.execute(text(query))).scalar_one()


def _start_sink_process(port: int, mbox_path: str):
    """The SMTP server in its own process, as in production: it must not share our GIL."""
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-m", "notifications.adapters.smtp_sink", "--port", str(port), "--mbox", mbox_path],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().startswith("READY")
    return process


TLS_RELAY = """
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

class Accept:
    async def handle_DATA(self, server, session, envelope):
        return "250 Message accepted for delivery"

def authenticate(server, session, envelope, mechanism, data):
    return AuthResult(success=data.login == b"bench" and data.password == b"bench-password", handled=False)

port, chain = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(chain)
Controller(Accept(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
           auth_required=True, authenticator=authenticate).start()
print("READY", flush=True)
time.sleep(3600)
"""


async def tls_sender_rounds(messages: int = 300, concurrency: int = 4) -> list[dict]:
    """Scenario 3: the sender's cost per message over STARTTLS with a login, kept connections
    against one connection per message, two rounds each, interleaved."""
    import subprocess
    import tempfile

    import trustme
    from benchlib import closed_loop
    from sender_it_support import note  # the senders' tests' notification

    from notifications.adapters.email_sender import SmtpConfig, SmtpEmailSender
    from notifications.adapters.smtp_sink import free_port

    authority, folder = trustme.CA(), Path(tempfile.mkdtemp())
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "relay.pem"))
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, "-c", TLS_RELAY, str(port), str(folder / "relay.pem")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert relay.stdout.readline().startswith("READY")
        config = SmtpConfig(
            port=port, starttls=True, username="bench", password="bench-password", ca_file=str(folder / "ca.pem")
        )
        rows = []
        for keep in (0, 4, 0, 4):
            sender = SmtpEmailSender(config, keep=keep)

            async def send(i: int, sender=sender) -> None:
                result = await sender.send(note(f"tls{i}@example.com"))
                if not result.ok:
                    raise RuntimeError(result.reason)

            what = "kept connections (up to 4)" if keep else "a connection per message"
            scenario = await closed_loop(f"SMTP STARTTLS + login, {what}", send, concurrency, messages)
            await sender.aclose()
            rows.append(scenario.summary())
        return rows
    finally:
        relay.terminate()
        relay.wait(10)


async def main(burst: int, rate: float, seconds: float) -> int:
    import tempfile

    from kit import lock_probe
    from kit.cache import make_redis
    from kit.infra import ensure_infrastructure
    from kit.provision import service_database_url
    from notifications.adapters.smtp_sink import free_port
    from notifications.bootstrap import start
    from notifications.config import NotificationsSettings

    admin_url, database, drop = await throwaway_database(["notifications"])
    infra = ensure_infrastructure()
    mbox_path = str(Path(tempfile.mkdtemp()) / "bench.mbox")
    port = free_port()
    sink = _start_sink_process(port, mbox_path)
    namespace = f"bench_{uuid.uuid4().hex[:8]}"
    settings = NotificationsSettings(
        database_url=service_database_url(admin_url, database, "notifications"),
        redis_url=infra.redis_url,
        redis_namespace=namespace,
        smtp_port=port,
        log_level="WARNING",
        log_json=False,
        lock_probe_strict=False,
        db_pool_size=6,
        db_max_overflow=2,
        consumer_concurrency=4,
        send_concurrency=4,
    )
    running = await start(settings)
    as_deployed_process()
    svc = running.notifier.services
    redis = make_redis(infra.redis_url, timeout_s=10)
    stream = f"{namespace}:events:booking"
    rows = []
    try:
        steady_total = int(rate * seconds)
        users = await _users(svc, burst + steady_total)
        readings_start = lock_probe.READINGS.mark()

        # 1. Burst.
        pipe = redis.pipeline(transaction=False)
        raws = [_envelope(u) for u in users[:burst]]
        started, started_epoch = time.perf_counter(), time.time()
        for raw in raws:
            pipe.xadd(stream, {"envelope": raw})
        await pipe.execute()
        recorded_at = await _wait(lambda: _recorded_at_least(svc, burst), interval_s=0.02)
        await _wait(lambda: _at_least(_emails_sent(svc), burst))
        arrivals, _ = _arrivals(mbox_path)
        emailed_at = started + max(arrivals[u] for u in users[:burst]) - started_epoch
        recorded = Scenario(f"burst {burst}: stream -> notification recorded", calls=burst)
        recorded.seconds = recorded_at - started
        recorded.notes = "events/s from XADD of the whole burst to all rows committed"
        emailed = Scenario(f"burst {burst}: stream -> e-mail received", calls=burst)
        emailed.seconds = emailed_at - started
        emailed.latencies_ms = [(arrivals[u] - started_epoch) * 1000 for u in users[:burst]]
        emailed.notes = "latency from the burst's publication (includes queueing)"
        rows += [recorded.summary(), emailed.summary()]

        # 2. Open loop: one event every 1/rate s; latency XADD -> e-mail in the SMTP server.
        published: dict[str, float] = {}
        steady_users = users[burst:]
        begin, begin_epoch = time.perf_counter(), time.time()
        for i, user in enumerate(steady_users):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            raw = _envelope(user)
            published[user] = time.time()
            await redis.xadd(stream, {"envelope": raw})
        await _wait(lambda: _at_least(_emails_sent(svc), burst + steady_total), interval_s=0.05)
        arrivals, total_emails = _arrivals(mbox_path)
        steady = Scenario(f"open loop {rate:g}/s for {seconds:g}s: published -> e-mail received", calls=steady_total)
        steady.seconds = max(arrivals[u] for u in steady_users) - begin_epoch
        steady.latencies_ms = [(arrivals[u] - published[u]) * 1000 for u in steady_users]
        steady.notes = "end-to-end latency per event (booking.confirmed XADD -> e-mail in aiosmtpd)"
        rows.append(steady.summary())

        readings = lock_probe.READINGS.since(readings_start)
        by_op: dict[str, list[int]] = defaultdict(list)
        for r in readings:
            by_op[f"{r.operation} ({r.kind})"].append(r.relation_locks if r.wrote else r.total_locks)
        locks = {
            op: {"transactions": len(v), "max": max(v), "mean": round(sum(v) / len(v), 2)} for op, v in by_op.items()
        }
        duplicates = total_emails - len(arrivals)
        rows += await tls_sender_rounds()
    finally:
        await running.stop(1)
        sink.terminate()
        sink.wait(10)
        await redis.aclose()
        await drop()

    print(f"## Notifications benchmark ({machine()})\n")
    print(markdown_table(rows))
    print("\n| transaction | count | locks max | locks mean |\n|---|---|---|---|")
    for op, v in sorted(locks.items()):
        print(f"| {op} | {v['transactions']} | {v['max']} | {v['mean']} |")
    print(f"\nduplicate e-mails: {duplicates}")
    path = write_results(
        "notifications", rows, {"locks_per_transaction": locks, "duplicate_emails": duplicates, "burst": burst}
    )
    print(f"\nwritten to {path}")
    return 0


async def _recorded_at_least(svc, n: int) -> bool:
    return await _recorded(svc) >= n


async def _at_least(count, n: int) -> bool:
    return await count >= n


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sys.exit(event_loop.run(main(args.burst, args.rate, args.seconds)))
