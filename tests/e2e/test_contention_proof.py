"""The contention proof: 1,000 concurrent booking attempts by 1,000 distinct clients through the
REST gateway on 10 one-hour slots of one INSTANT place (a fifth of them spanning two adjacent
slots) end with exactly the 10 slots confirmed, no overlapping live calendar rows, no false
conflicts, a definite answer for every request, and no payment left open once the sweepers ran.

Its negative control drives the same attempts into a naive check-then-insert implementation (the
seeds' way: SELECT overlapping, then INSERT, no constraint) and the same checker catches the double
bookings, so the checker can fail."""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
from chaos_support import (
    HOUR,
    Attempt,
    Outcome,
    a_free_day,
    admin_connect,
    check_outcomes,
    confirmed_slots,
    drive,
    mint_clients,
    overlapping_live_entries,
    plan_attempts,
    rest_booker,
    wait_until_settled,
)
from gateway_e2e_support import new_place, new_user

from kit.provision import admin_dsn

pytestmark = [pytest.mark.xdist_group("e2e"), pytest.mark.asyncio]

ATTEMPTS, SLOTS, IN_FLIGHT = 1000, 10, 64


async def test_a_thousand_clients_racing_for_ten_slots_get_exactly_ten_bookings(platform, infra, database):
    day = a_free_day()
    attempts = plan_attempts(ATTEMPTS, SLOTS)
    assert any(a.slots == 2 for a in attempts)
    clients = mint_clients(ATTEMPTS)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, limits=limits) as api:
        host = await new_user(api, "host")
        place = await new_place(api, host, unit_count=1)
        outcomes = await drive(attempts, rest_booker(api, place["id"], day, clients), IN_FLIGHT)

    verdict = check_outcomes(outcomes)
    answers = Counter((o.status, o.code) for o in outcomes)
    assert not verdict.violations, f"{verdict.violations}; answers: {answers}"
    assert verdict.taken_slots == set(range(SLOTS)), answers
    assert len({o.booking_id for o in outcomes if o.accepted}) == sum(o.accepted for o in outcomes)

    conn = await admin_connect(infra.admin_database_url, database)
    try:
        assert await overlapping_live_entries(conn, place["id"]) == 0
        # Exactly the ten slots, each in exactly one confirmed booking.
        assert await confirmed_slots(conn, place["id"], day) == list(range(SLOTS))
        loose_ends = await wait_until_settled(conn, place["id"], timeout_s=20)
        assert not any(loose_ends.values()), loose_ends
    finally:
        await conn.close()


# --- the negative control ----------------------------------------------------------------------


def naive_booker(pool: asyncpg.Pool, table: str, place_id: str, day) -> object:
    """Check-then-insert in the application, each statement on its own (autocommit), as the seeds'
    applications did: the SELECT can no longer be true when the INSERT lands."""

    async def book(attempt: Attempt) -> Outcome:
        start = day + attempt.first_slot * HOUR
        end = start + attempt.slots * HOUR
        async with pool.acquire() as conn:
            taken = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE place_id = $1 AND during && tstzrange($2, $3)",
                place_id,
                start,
                end,
            )
            if taken:
                return Outcome(attempt, 409, "SLOT_UNAVAILABLE")
            booking_id = str(uuid.uuid4())
            await conn.execute(
                f"INSERT INTO {table} (id, place_id, during) VALUES ($1, $2, tstzrange($3, $4))",
                booking_id,
                place_id,
                start,
                end,
            )
            return Outcome(attempt, 201, booking_id=booking_id)

    return book


async def test_the_same_checker_catches_the_double_bookings_of_a_naive_check_then_insert(infra, database):
    table = f"public.naive_bookings_{uuid.uuid4().hex[:8]}"
    day, place_id = a_free_day(), str(uuid.uuid4())
    dsn = admin_dsn(infra.admin_database_url, database)
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        f"CREATE TABLE {table} (id text PRIMARY KEY, place_id text NOT NULL, during tstzrange NOT NULL)"
    )
    # A pool the size the services use under load: 20 connections, 64 callers.
    pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
    try:
        outcomes = await drive(plan_attempts(ATTEMPTS, SLOTS), naive_booker(pool, table, place_id, day), IN_FLIGHT)
        verdict = check_outcomes(outcomes)
        overlapping = await setup.fetchval(
            f"SELECT count(*) FROM {table} a JOIN {table} b ON a.place_id = b.place_id"
            " AND a.during && b.during AND a.id < b.id"
        )
    finally:
        await pool.close()
        await setup.execute(f"DROP TABLE {table}")
        await setup.close()
    assert verdict.double_bookings, "the checker missed the naive implementation's double bookings"
    assert any("double bookings" in v for v in verdict.violations)
    assert overlapping > 0, "the SQL check missed the overlapping rows"
