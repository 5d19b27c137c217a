"""Availability benchmark (not collected by pytest). One command:

    .venv/bin/python tests/benchmarks/availability_bench.py

Builds a throwaway database with 2,000 places and 200,000 calendar entries over 90 days, starts the
service in-process on it, and measures: SearchAvailability through gRPC (full scan, first page of
50, cache hit), the raw search SQL alone, a naive one-query-per-place loop, and HoldSlots
throughput at 32 concurrent callers under low and high contention with the locks per transaction.
Prints a Markdown table and writes tests/benchmarks/results/availability.json."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLACES, ENTRIES_PER_PLACE, DAYS = 2_000, 100, 90
CITY = "Benchville"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def seed(admin_dsn: str, base: datetime) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        schedule = json.dumps(
            {
                "opening_hours": [[d, 0, 1440] for d in range(1, 8)],
                "first_bookable_date": None,
                "last_bookable_date": None,
                "blocked_dates": [],
                "blocked_weekdays": [],
                "minimum_notice": 0,
                "maximum_advance": 365 * 86400,
                "slot_granularity": 1800,
                "minimum_duration": 1800,
                "maximum_duration": 86400,
                "buffer_before": 0,
                "buffer_after": 0,
            }
        )
        await conn.execute(
            """
            INSERT INTO availability.places
            SELECT gen_random_uuid(), gen_random_uuid()::text, 'Place ' || i, '', $1, i || ' Bench Street',
                   1 + i % 12, 1, 1000 + (i * 37) % 9000, 'EUR', 'UTC', 'INSTANT', '[]'::jsonb, true,
                   (i % 5) * 4, 4 * (i % 5 > 0)::int, CASE WHEN i % 5 > 0 THEN i % 5 ELSE 0 END,
                   '{"kind": "FULL_PREPAYMENT", "percent": 0, "fixed_amount": null}'::jsonb,
                   '{"full_refund_notice": 86400, "partial": 0}'::jsonb, $2::jsonb, 1, now(), now()
              FROM generate_series(1, $3) i
            """,
            CITY,
            schedule,
            PLACES,
        )
        # One hold per entry (block kind keeps it simple): spaced 21.6 h apart per place, 1-3 h long,
        # shifted per place so that windows see a realistic mix of free and busy places.
        await conn.execute(
            """
            INSERT INTO availability.calendar_entries
                   (hold_id, place_id, unit, during, booked, kind, booking_id, expires_at, live)
            SELECT gen_random_uuid(), p.id, 0, r, r, 'confirmed', '', NULL, true
              FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM availability.places WHERE city = $1) p,
                   generate_series(0, $2 - 1) k,
                   LATERAL (SELECT $3::timestamptz + k * interval '1296 minutes'
                                   + ((p.n * 7 + k * 13) % 20) * interval '30 minutes' AS s) ss,
                   LATERAL (SELECT tstzrange(ss.s, ss.s + (1 + (p.n + k) % 3) * interval '1 hour', '[)') AS r) rr
            """,
            CITY,
            ENTRIES_PER_PLACE,
            base,
        )
        await conn.execute("ANALYZE availability.places")
        await conn.execute("ANALYZE availability.calendar_entries")
        await conn.execute("VACUUM availability.calendar_entries")
    finally:
        await conn.close()


async def main() -> dict:
    import grpc
    from google.protobuf import duration_pb2, timestamp_pb2
    from sqlalchemy import text

    from availability.bootstrap import start
    from availability.config import AvailabilitySettings
    from kit import lock_probe
    from kit.cli import migrate_all
    from kit.gc_tuning import tune_for_server
    from kit.infra import ensure_infrastructure
    from kit.provision import admin_dsn, drop_database, service_database_url
    from reserva.availability.v1 import availability_pb2 as pb
    from reserva.availability.v1 import availability_pb2_grpc
    from reserva.type.v1 import types_pb2

    infra = ensure_infrastructure()
    database = f"reserva_bench_{uuid.uuid4().hex[:8]}"
    await migrate_all(infra.admin_database_url, database, services=["availability"])
    base = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    results: dict = {"places": PLACES, "entries": PLACES * ENTRIES_PER_PLACE, "days": DAYS}
    running = None
    try:
        started = time.perf_counter()
        await seed(admin_dsn(infra.admin_database_url, database), base)
        results["seed_s"] = round(time.perf_counter() - started, 1)
        settings = AvailabilitySettings(
            database_url=service_database_url(infra.admin_database_url, database, "availability"),
            redis_url=infra.redis_url,
            redis_namespace=f"bench_{uuid.uuid4().hex[:6]}",
            grpc_port=0,
            sweeper_enabled=False,
            outbox_relay_enabled=False,
            lock_probe_enabled=True,
            lock_probe_strict=False,
            # As deployed (deploy/base): the probe measures a share of the transactions.
            lock_probe_sample_rate=0.05,
            log_json=False,
            log_level="WARNING",
            db_pool_size=16,
            db_max_overflow=0,
            slow_statement_ms=100_000,
        )
        running = await start(settings)
        tune_for_server()  # as a service process does once started (kit.server)
        deps = running.deps
        channel = grpc.aio.insecure_channel(running.address)
        stub = availability_pb2_grpc.AvailabilityServiceStub(channel)

        def ts(value: datetime) -> timestamp_pb2.Timestamp:
            t = timestamp_pb2.Timestamp()
            t.FromDatetime(value)
            return t

        def window_at(day: int, hour: int) -> types_pb2.TimeRange:
            start = base + timedelta(days=day, hours=hour)
            return types_pb2.TimeRange(start_time=ts(start), end_time=ts(start + timedelta(hours=2)))

        two_hours = duration_pb2.Duration(seconds=7200)

        async def timed_search(day: int, size: int, bust: bool, every_page: bool = False) -> tuple[float, int]:
            """One call (a first page), or with every_page the whole result: all pages, in order."""
            if bust:
                await deps.search_cache.bump()
            request = pb.SearchAvailabilityRequest(
                city=CITY, window=window_at(day, 10), duration=two_hours, page_size=size
            )
            t0 = time.perf_counter()
            reply = await stub.SearchAvailability(request, timeout=60)
            found = len(reply.results)
            while every_page and reply.next_page_token:
                request.page_token = reply.next_page_token
                reply = await stub.SearchAvailability(request, timeout=60)
                found += len(reply.results)
            return (time.perf_counter() - t0) * 1000, found

        await timed_search(3, 200, True, every_page=True)  # warm-up
        # Full scan: every hit of the city (all pages of 200), i.e. every place's free slots.
        full = [await timed_search(3 + i % 60, 200, True, every_page=True) for i in range(15)]
        full_hits = {3 + i % 60: found for i, (_, found) in enumerate(full)}
        first_page = [await timed_search(3 + i % 60, 50, True) for i in range(15)]
        await timed_search(5, 50, True)
        hits = [await timed_search(5, 50, False) for _ in range(30)]

        # Service time of a cache hit: the handler alone, without gRPC.
        from availability.service_layer import queries

        hit_query = queries.SearchQuery(
            filters=queries.PlaceFilter(city=CITY),
            window=__import__("availability.domain.model", fromlist=["TimeRange"]).TimeRange(
                base + timedelta(days=5, hours=10), base + timedelta(days=5, hours=12)
            ),
            duration=timedelta(hours=2),
            page_size=50,
        )
        handler_hits = []
        for _ in range(30):
            t0 = time.perf_counter()
            await queries.search_availability(deps, hit_query)
            handler_hits.append((time.perf_counter() - t0) * 1000)

        from availability.domain.calendar import slot_group
        from availability.domain.model import TimeRange, zone
        from availability.service_layer.queries import _schedule

        async def raw_sql(day: int, size: int, every_page: bool) -> float:
            """The service's search statements alone (the schedule groups, then each page), in one
            transaction: every page of `size` (every_page) or the first one."""
            start = base + timedelta(days=day, hours=10)
            window, now = TimeRange(start, start + timedelta(hours=2)), datetime.now(UTC)
            found = 0
            async with running.deps.uow() as uow:
                t0 = time.perf_counter()
                groups = []
                for g in await uow.search.groups(CITY):
                    group = slot_group(
                        _schedule(g.schedule_text), zone(g.time_zone), window, timedelta(hours=2), now, 3
                    )
                    if group is not None:
                        groups.append((g.key, group))
                position = None
                while True:
                    rows = await uow.search.page(groups, CITY, 0, 0.0, None, None, None, now, 1, 3, size + 1, position)
                    found += min(len(rows), size)
                    if len(rows) <= size or not every_page:
                        break
                    last = rows[size - 1]
                    free = last["free"]
                    first = groups[last["grp"] - 1][1].candidates[int(free.split(",")[0]) - 1 if free else 0].start
                    position = (first, last["rating_average"], last["id"])
                elapsed = (time.perf_counter() - t0) * 1000
            assert not every_page or found == full_hits[day], (found, full_hits[day])
            return elapsed

        async def raw_busy_index_only(day: int) -> float:
            """The issue's query: places busy in the window, an index-only scan of the partial GiST
            index gist(during) INCLUDE (place_id) WHERE live."""
            start = base + timedelta(days=day, hours=10)
            async with running.deps.uow() as uow:
                t0 = time.perf_counter()
                await uow.session.execute(
                    text(
                        "SELECT DISTINCT place_id FROM availability.calendar_entries "
                        "WHERE live AND during && tstzrange(:s, :e) AND (expires_at IS NULL OR expires_at > :now)"
                    ),
                    {"s": start, "e": start + timedelta(hours=2), "now": datetime.now(UTC)},
                )
                return (time.perf_counter() - t0) * 1000

        raw = [await raw_sql(3 + i % 60, 200, True) for i in range(15)]
        raw_first_page = [await raw_sql(3 + i % 60, 50, False) for i in range(15)]
        raw_busy = [await raw_busy_index_only(3 + i % 60) for i in range(15)]

        async def naive_loop(day: int) -> float:
            start = base + timedelta(days=day, hours=10)
            async with running.deps.uow() as uow:
                t0 = time.perf_counter()
                ids = [
                    r.id
                    for r in await uow.session.execute(
                        text("SELECT id FROM availability.places WHERE city = :c"), {"c": CITY}
                    )
                ]
                for place_id in ids:
                    await uow.session.execute(
                        text(
                            "SELECT EXISTS (SELECT 1 FROM availability.calendar_entries WHERE place_id = :p AND live "
                            "AND during && tstzrange(:s, :e))"
                        ),
                        {"p": place_id, "s": start, "e": start + timedelta(hours=2)},
                    )
                return (time.perf_counter() - t0) * 1000

        naive = [await naive_loop(3 + i) for i in range(2)]

        # HoldSlots at 32 concurrent callers.
        async with running.deps.uow() as uow:
            place_ids = [
                str(r.id) for r in await uow.session.execute(text("SELECT id FROM availability.places LIMIT 32"))
            ]

        async def holds_run(contended: bool, total: int = 640) -> dict:
            lock_probe.READINGS.clear()
            queue = list(range(total))
            outcome = {"ok": 0, "slot_unavailable": 0, "aborted": 0, "other": 0}

            async def worker(w: int) -> None:
                mine = 0
                while queue:
                    n = queue.pop()
                    mine += 1
                    place = place_ids[0] if contended else place_ids[w]
                    # Free hours after the seeded entries (they end on day 90). Low contention: every
                    # caller its own place and hours; high: all callers on 16 hours of one place.
                    hour = (n % 16) if contended else mine
                    day = (120 if contended else 91) + hour // 20
                    start = base + timedelta(days=day, hours=hour % 20)
                    request = pb.HoldSlotsRequest(
                        request_id=str(uuid.uuid4()),
                        place_id=place,
                        ranges=[types_pb2.TimeRange(start_time=ts(start), end_time=ts(start + timedelta(hours=1)))],
                        holder_id=str(uuid.uuid4()),
                        ttl=duration_pb2.Duration(seconds=900),
                    )
                    try:
                        await stub.HoldSlots(request, timeout=30)
                        outcome["ok"] += 1
                    except grpc.aio.AioRpcError as error:
                        key = {
                            grpc.StatusCode.FAILED_PRECONDITION: "slot_unavailable",
                            grpc.StatusCode.ABORTED: "aborted",
                        }.get(error.code(), "other")
                        outcome[key] += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(32)))
            elapsed = time.perf_counter() - t0
            writes = [r for r in lock_probe.READINGS if r.operation == "HoldSlots" and r.wrote]
            return {
                **outcome,
                "requests": total,
                "seconds": round(elapsed, 2),
                "requests_per_s": round(total / elapsed, 1),
                # The probe measures its production share of the transactions: with few writes (a
                # contended run holds 16 slots), none may have been measured; say so, not 0.
                "measured_writes": len(writes),
                "max_relation_locks": max((r.relation_locks for r in writes), default=None),
                "max_advisory_locks": max((r.advisory_locks for r in writes), default=None),
            }

        low = await holds_run(False)
        high = await holds_run(True)
        await channel.close()

        def summary(samples: list[float]) -> dict:
            return {
                "p50_ms": round(pct(samples, 0.5), 2),
                "p95_ms": round(pct(samples, 0.95), 2),
                "p99_ms": round(pct(samples, 0.99), 2),
                "n": len(samples),
            }

        results.update(
            {
                "search_service_full_scan": {**summary([m for m, _ in full]), "results": full[0][1]},
                "search_raw_sql": summary(raw),
                "search_raw_sql_first_page_50": summary(raw_first_page),
                "search_raw_busy_places_index_only": summary(raw_busy),
                "search_naive_per_place_loop": summary(naive),
                "search_service_first_page_50": summary([m for m, _ in first_page]),
                "search_service_cache_hit": summary([m for m, _ in hits]),
                "search_handler_cache_hit": summary(handler_hits),
                "hold_slots_32_callers_low_contention": low,
                "hold_slots_32_callers_high_contention": high,
                "cpus": __import__("os").cpu_count(),
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        return results
    finally:
        if running is not None:
            await running.stop(0)
        await drop_database(infra.admin_database_url, database)


def report(r: dict) -> str:
    lines = [
        f"Availability benchmark: {r['places']} places, {r['entries']} calendar entries over {r['days']} days, "
        f"{r['cpus']} CPUs",
        "",
        "| measurement | p50 ms | p95 ms | p99 ms | n |",
        "|---|---|---|---|---|",
    ]
    for key in (
        "search_service_full_scan",
        "search_raw_sql",
        "search_raw_sql_first_page_50",
        "search_raw_busy_places_index_only",
        "search_naive_per_place_loop",
        "search_service_first_page_50",
        "search_service_cache_hit",
        "search_handler_cache_hit",
    ):
        m = r[key]
        lines.append(f"| {key} | {m['p50_ms']} | {m['p95_ms']} | {m['p99_ms']} | {m['n']} |")
    lines += [
        "",
        "| HoldSlots, 32 callers | req/s | ok | slot taken | aborted | writes measured | max rel locks | max adv |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("hold_slots_32_callers_low_contention", "hold_slots_32_callers_high_contention"):
        m = r[key]
        lines.append(
            f"| {key.rsplit('_', 2)[-2]} contention | {m['requests_per_s']} | {m['ok']} | {m['slot_unavailable']} | "
            f"{m['aborted']} | {m['measured_writes']} | {_or_dash(m['max_relation_locks'])} | "
            f"{_or_dash(m['max_advisory_locks'])} |"
        )
    return "\n".join(lines)


def _or_dash(value) -> str:
    return "–" if value is None else str(value)


if __name__ == "__main__":
    for folder in ("services/kit", "services/availability", "protos/gen"):
        sys.path.insert(0, str(ROOT / folder))
    import logging

    from kit import event_loop

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("reserva").setLevel(logging.ERROR)
    outcome = event_loop.run(main())  # the loop the services run on
    out = ROOT / "tests/benchmarks/results/availability.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome, indent=2) + "\n")
    print(report(outcome))
