"""CreateBooking through gRPC (availability + payments + booking in-process, the whole saga: hold ->
authorize -> confirm hold -> capture -> confirmed), in a throwaway database, compared in the same run with

- a naive check-then-insert (plain asyncpg: SELECT overlapping, then INSERT, no constraint, in a
  scratch table), driven with the same contended workload, counting the double bookings it lets in;
- the raw insert ceiling (advisory lock of the place + INSERT ... ON CONFLICT DO NOTHING into
  availability.calendar_entries, as in ceiling_bench.py): the saga's throughput as a fraction of it.

Scenarios at 32 and 128 concurrent callers. Locks per transaction come from kit.lock_probe.READINGS
(the services measure the production share of their transactions). Last, the same saga against the
three services as deployed, each in its own process (kit.platform): in-process they share one event
loop with the load generator, so one core, whatever the machine has.
Prints a Markdown table, writes results/booking.json. Run: .venv/bin/python tests/benchmarks/booking_bench.py"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import asyncpg  # noqa: E402
import grpc  # noqa: E402
from benchlib import (  # noqa: E402
    PRODUCTION_LOCK_PROBE_SAMPLE_RATE,
    as_deployed_process,
    closed_loop,
    load_generator_without_pauses,
    markdown_table,
    throwaway_database,
    write_results,
)
from google.protobuf import timestamp_pb2  # noqa: E402

from kit import event_loop  # noqa: E402

CONCURRENCY = (32, 128)
CALLS = int(os.environ.get("BOOKING_BENCH_CALLS", "200"))  # smaller for a smoke run
# The ceiling over as many inserts as ceiling_bench's: 200 take a tenth of a second, and a figure
# that short moved by a factor of two from run to run, and the saga's share of it with it.
CEILING_CALLS = max(CALLS, 3000)
PLACES = 200
CONTENDED_PLACES, CONTENDED_SLOTS = 1, 10  # high contention as the issue defines it: 10 slots, 200 calls
HOT_SLOTS = CONTENDED_PLACES * CONTENDED_SLOTS

RAW_INSERT = """
INSERT INTO availability.calendar_entries (hold_id, place_id, unit, during, booked, kind, booking_id, live)
VALUES ($1, $2, 0, tstzrange($3, $4), tstzrange($3, $4), 'hold', $5, true)
ON CONFLICT DO NOTHING RETURNING id
"""
NAIVE_TABLE = """
CREATE TABLE IF NOT EXISTS public.bench_naive_bookings (
    id uuid PRIMARY KEY, place_id uuid NOT NULL, during tstzrange NOT NULL)
"""


async def raw_hold(pool: asyncpg.Pool, place: str, start: datetime) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", place)
        row = await conn.fetchrow(RAW_INSERT, str(uuid.uuid4()), place, start, start + timedelta(hours=1), "bench")
        return row is not None


async def naive_book(pool: asyncpg.Pool, place: str, start: datetime) -> bool:
    """The seeds' way: look for an overlapping booking, insert if none. Two callers can both look,
    both see nothing, and both insert."""
    end = start + timedelta(hours=1)
    async with pool.acquire() as conn:
        taken = await conn.fetchval(
            "SELECT count(*) FROM public.bench_naive_bookings WHERE place_id = $1 AND during && tstzrange($2, $3)",
            place,
            start,
            end,
        )
        if taken:
            return False
        await conn.execute(
            "INSERT INTO public.bench_naive_bookings VALUES ($1, $2, tstzrange($3, $4))",
            str(uuid.uuid4()),
            place,
            start,
            end,
        )
        return True


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def book(stub, place: str, start: datetime):
    """CreateBooking of one hour from `start` by a new client, paid by a card that works."""
    from kit.identity import Caller
    from reserva.booking.v1 import booking_pb2 as bpb
    from reserva.type.v1 import types_pb2

    hour = types_pb2.TimeRange(start_time=ts(start), end_time=ts(start + timedelta(hours=1)))
    request = bpb.CreateBookingRequest(
        request_id=str(uuid.uuid4()), place_id=place, ranges=[hour], guests=1, payment_method_token="tok_success"
    )
    client = Caller(str(uuid.uuid4()), frozenset({"client"}))
    return stub.CreateBooking(request, metadata=tuple(client.to_metadata()), timeout=60)


def kind(error: BaseException) -> str:
    return error.code().name if isinstance(error, grpc.aio.AioRpcError) else type(error).__name__


async def main() -> int:  # noqa: PLR0915 - one linear script
    from availability.bootstrap import start as start_availability
    from availability.config import AvailabilitySettings
    from booking.bootstrap import start as start_booking
    from booking.config import BookingSettings
    from kit.identity import Caller
    from kit.lock_probe import READINGS
    from kit.provision import admin_dsn, service_database_url
    from payments.bootstrap import start as start_payments
    from payments.config import PaymentsSettings
    from reserva.availability.v1 import availability_pb2 as apb
    from reserva.availability.v1 import availability_pb2_grpc
    from reserva.booking.v1 import booking_pb2_grpc
    from reserva.type.v1 import types_pb2

    admin_url, database, drop = await throwaway_database(["availability", "payments", "booking"])
    namespace = f"bench_{uuid.uuid4().hex[:6]}"
    # PostgreSQL's max_connections is shared with other work on this machine: small pools.
    common = dict(redis_namespace=namespace, db_pool_size=8, db_max_overflow=4, lock_probe_strict=False)
    common["lock_probe_sample_rate"] = PRODUCTION_LOCK_PROBE_SAMPLE_RATE
    common["log_level"] = "WARNING"
    availability = await start_availability(
        AvailabilitySettings(
            service_name="availability",
            database_url=service_database_url(admin_url, database, "availability"),
            **common,
        )
    )
    payments = await start_payments(
        PaymentsSettings(
            service_name="payments",
            database_url=service_database_url(admin_url, database, "payments"),
            sandbox_webhooks_enabled=False,
            **common,
        )
    )
    booking_settings = BookingSettings(
        service_name="booking",
        database_url=service_database_url(admin_url, database, "booking"),
        availability_addr=availability.address,
        payments_addr=payments.address,
        workers_enabled=False,
        peer_deadline_s=10.0,
        **common,
    )
    booking = await start_booking(booking_settings)
    in_process = [booking, payments, availability]  # stopped in this order
    as_deployed_process()
    raw_pool = await asyncpg.create_pool(
        service_database_url(admin_url, database, "availability").replace("+asyncpg", ""), min_size=4, max_size=12
    )
    naive_pool = await asyncpg.create_pool(admin_dsn(admin_url, database), min_size=4, max_size=12)
    await naive_pool.execute(NAIVE_TABLE)

    host = Caller(str(uuid.uuid4()), frozenset({"host"}))
    rows: list[dict] = []
    extra: dict = {
        "calls_per_scenario": CALLS,
        "ceiling_calls": CEILING_CALLS,
        "max_concurrent_flows": booking_settings.max_concurrent_flows,
    }
    try:
        async with (
            grpc.aio.insecure_channel(availability.address) as a_channel,
            grpc.aio.insecure_channel(booking.address) as b_channel,
        ):
            astub = availability_pb2_grpc.AvailabilityServiceStub(a_channel)
            bstub = booking_pb2_grpc.BookingServiceStub(b_channel)
            week = [
                apb.OpeningInterval(weekday=d, start=types_pb2.LocalTime(hours=0), end=types_pb2.LocalTime(hours=24))
                for d in range(1, 8)
            ]
            places = []
            for _ in range(PLACES):
                created = await astub.CreatePlace(
                    apb.CreatePlaceRequest(
                        request_id=str(uuid.uuid4()),
                        place=apb.Place(
                            title="Bench room",
                            city="Benchville",
                            address="1 Bench Street",
                            capacity=2,
                            unit_count=1,
                            price_per_hour=types_pb2.Money(amount_minor=1000, currency_code="EUR"),
                            time_zone="UTC",
                            booking_mode=apb.Place.INSTANT,
                            schedule=apb.Schedule(opening_hours=week),
                        ),
                    ),
                    metadata=tuple(host.to_metadata()),
                )
                places.append(created.id)

            day0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)

            def spread(i: int, base: datetime) -> tuple[str, datetime]:
                return places[i % PLACES], base + timedelta(hours=i // PLACES)

            def contended(i: int, base: datetime) -> tuple[str, datetime]:
                return places[i % CONTENDED_PLACES], base + timedelta(hours=(i // CONTENDED_PLACES) % CONTENDED_SLOTS)

            def create(place: str, start: datetime):
                return book(bstub, place, start)

            for n, concurrency in enumerate(CONCURRENCY):
                base = day0 + timedelta(days=10 * n)

                async def raw(i: int, _b=base) -> None:
                    await raw_hold(raw_pool, *spread(i, _b))

                async def saga(i: int, _b=base + timedelta(days=5)) -> None:
                    await create(*spread(i, _b))

                s_raw = await closed_loop(
                    f"raw insert ceiling, {concurrency} callers", raw, concurrency, CEILING_CALLS, kind
                )
                first = READINGS.mark()
                s_saga = await closed_loop(f"CreateBooking saga, {concurrency} callers", saga, concurrency, CALLS, kind)
                writes = [r for r in READINGS.since(first) if r.wrote]
                s_saga.locks = [r.relation_locks + r.advisory_locks for r in writes]
                raw_row, saga_row = s_raw.summary(), s_saga.summary()
                saga_row["vs_raw"] = round(saga_row["throughput_per_s"] / raw_row["throughput_per_s"], 3)
                # The probe measures a sample of the transactions: scale its count back up.
                saga_row["transactions_sampled"] = len(writes)
                estimate = len(writes) / PRODUCTION_LOCK_PROBE_SAMPLE_RATE / max(1, s_saga.calls)
                saga_row["transactions_per_booking"] = round(estimate, 1)
                by_service: dict[str, int] = {}
                for r in writes:
                    by_service[r.service] = max(by_service.get(r.service, 0), r.relation_locks + r.advisory_locks)
                saga_row["locks_max_by_service"] = by_service
                saga_row["notes"] = (
                    f"{saga_row['vs_raw']:.1%} of the raw insert ceiling; "
                    f"about {saga_row['transactions_per_booking']} write transactions per booking (all services, "
                    f"from the probe's {PRODUCTION_LOCK_PROBE_SAMPLE_RATE:.0%} sample)"
                )
                rows.extend([raw_row, saga_row])

            # Contended: the same slots asked for again and again, the naive way and Reserva's way.
            contended_calls = CALLS
            base = day0 + timedelta(days=40)
            naive_double: dict[int, int] = {}
            for concurrency in CONCURRENCY:
                await naive_pool.execute("TRUNCATE public.bench_naive_bookings")

                async def naive(i: int, _b=base) -> None:
                    await naive_book(naive_pool, *contended(i, _b))

                s_naive = await closed_loop(
                    f"naive check-then-insert, contended ({HOT_SLOTS} slots), {concurrency} callers",
                    naive,
                    concurrency,
                    contended_calls,
                    kind,
                )
                inserted = await naive_pool.fetchval("SELECT count(*) FROM public.bench_naive_bookings")
                distinct = await naive_pool.fetchval(
                    "SELECT count(DISTINCT (place_id, during)) FROM public.bench_naive_bookings"
                )
                naive_double[concurrency] = inserted - distinct
                row = s_naive.summary()
                row["double_bookings"] = inserted - distinct
                row["notes"] = f"{inserted - distinct} double bookings ({inserted} rows for {distinct} slots)"
                rows.append(row)

                saga_base = base + timedelta(days=1 + concurrency)

                async def contended_saga(i: int, _b=saga_base) -> None:
                    try:
                        await create(*contended(i, _b))
                    except grpc.aio.AioRpcError as error:
                        if error.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                            raise  # a taken slot is a defined answer, anything else an error

                first = READINGS.mark()
                s_c = await closed_loop(
                    f"CreateBooking saga, contended ({HOT_SLOTS} slots), {concurrency} callers",
                    contended_saga,
                    concurrency,
                    contended_calls,
                    kind,
                )
                s_c.locks = [r.relation_locks + r.advisory_locks for r in READINGS.since(first) if r.wrote]
                overlaps = await naive_pool.fetchval(
                    """
                    SELECT count(*) FROM availability.calendar_entries a
                      JOIN availability.calendar_entries b
                        ON a.place_id = b.place_id AND a.unit = b.unit AND a.id < b.id AND a.during && b.during
                     WHERE a.live AND b.live AND lower(a.during) >= $1 AND lower(a.during) < $2
                    """,
                    saga_base,
                    saga_base + timedelta(days=1),
                )
                confirmed = await naive_pool.fetchval(
                    "SELECT count(*) FROM booking.bookings WHERE status = 'confirmed' AND first_start >= $1 "
                    "AND first_start < $2",
                    saga_base,
                    saga_base + timedelta(days=1),
                )
                row = s_c.summary()
                row["double_bookings"] = overlaps
                row["confirmed"] = confirmed
                row["notes"] = f"{overlaps} double bookings; {confirmed} confirmed for {HOT_SLOTS} slots"
                rows.append(row)
            extra["naive_double_bookings"] = naive_double
        # As deployed: the three services each in its own process (the in-process scenarios above
        # share one event loop, client included, so one core). The same calls on the same
        # database, fresh days; the ceiling is the raw insert of this run at the same concurrency.
        for running in in_process:
            await running.stop(0)
        in_process = []
        ceilings = {
            c: r["throughput_per_s"]
            for r in rows
            for c in CONCURRENCY
            if r["name"] == f"raw insert ceiling, {c} callers"
        }
        rows.extend(await deployed_sagas(admin_url, database, namespace, places, day0 + timedelta(days=300), ceilings))
    finally:
        await naive_pool.execute("DROP TABLE IF EXISTS public.bench_naive_bookings")
        await naive_pool.close()
        await raw_pool.close()
        for running in in_process:
            await running.stop(0)
        await drop()
    print(markdown_table(rows))
    for r in rows:
        if r.get("notes"):
            print(f"- {r['name']}: {r['notes']}")
    path = write_results("booking", rows, extra)
    print(f"written to {path}")
    return 0


async def deployed_sagas(
    admin_url: str, database: str, namespace: str, places: list[str], base: datetime, ceilings: dict[int, float]
) -> list[dict]:
    """CreateBooking at each concurrency against availability, payments and booking started as
    their own processes (kit.platform, as `./reserva up` runs them), with the settings of the
    in-process scenarios."""
    import asyncio

    from kit.platform import Platform
    from reserva.booking.v1 import booking_pb2_grpc

    settings = {"DB_POOL_SIZE": "8", "DB_MAX_OVERFLOW": "4", "LOCK_PROBE_STRICT": "false", "LOG_LEVEL": "WARNING"}
    settings["LOCK_PROBE_SAMPLE_RATE"] = str(PRODUCTION_LOCK_PROBE_SAMPLE_RATE)
    env = {f"{service}_{k}": v for service in ("AVAILABILITY", "PAYMENTS", "BOOKING") for k, v in settings.items()}
    env.update(PAYMENTS_SANDBOX_WEBHOOKS_ENABLED="false", BOOKING_WORKERS_ENABLED="false", BOOKING_PEER_DEADLINE_S="10")
    from kit.infra import ensure_infrastructure

    platform = Platform(
        admin_database_url=admin_url,
        database=database,
        redis_url=ensure_infrastructure().redis_url,
        redis_namespace=namespace,
        fixed_ports=False,
        extra_env=env,
    )
    rows = []
    try:
        for name in ("availability", "payments", "booking"):  # booking is told its peers' addresses
            await asyncio.to_thread(platform.start_one, name, 120)
        async with grpc.aio.insecure_channel(platform.address("booking")) as channel:
            stub = booking_pb2_grpc.BookingServiceStub(channel)
            for n, concurrency in enumerate(CONCURRENCY):

                async def saga(i: int, _b=base + timedelta(days=10 * n)) -> None:
                    await book(stub, places[i % PLACES], _b + timedelta(hours=i // PLACES))

                label = f"CreateBooking saga, services in their own processes, {concurrency} callers"
                with load_generator_without_pauses():  # the services are in other processes
                    row = (await closed_loop(label, saga, concurrency, CALLS, kind)).summary()
                row["vs_raw"] = round(row["throughput_per_s"] / ceilings[concurrency], 3)
                row["notes"] = f"{row['vs_raw']:.1%} of the raw insert ceiling at {concurrency} callers"
                rows.append(row)
    finally:
        await asyncio.to_thread(platform.stop)
    return rows


if __name__ == "__main__":
    raise SystemExit(event_loop.run(main()))
