"""The calendar through real gRPC: holds all-or-nothing, idempotent, expiring, with buffers and
several units; blocks; and the database refusing overlaps whatever the code does."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from availability_helpers import (
    SERVICE,
    As,
    create_place,
    dur,
    error_info,
    future_hour,
    hold_request,
    host,
    rid,
    trange,
)
from waiting import wait_until

from reserva.availability.v1 import availability_pb2 as pb

H = timedelta(hours=1)


async def test_a_hold_takes_its_ranges_and_a_second_one_gets_slot_unavailable_with_the_conflicts(stub, lock_readings):
    place = await create_place(stub)
    start = future_hour()
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + 2 * H)))
    assert hold.state == pb.Hold.HELD and hold.units == 1 and hold.expire_time.seconds > 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + H, start + 3 * H)))
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    reason, metadata, details = error_info(caught.value)
    assert reason == "SLOT_UNAVAILABLE" and metadata["place_id"] == place.id
    conflict = pb.SlotConflict()
    assert details and details[0].Unpack(conflict)
    assert [r.start_time.ToDatetime().hour for r in conflict.conflicting_ranges] == [start.hour]
    holds = [r for r in lock_readings() if r.operation == "HoldSlots"]
    assert holds and all(r.relation_locks <= 16 and r.advisory_locks <= 1 for r in holds)


async def test_a_multi_range_hold_is_all_or_nothing(stub):
    place = await create_place(stub)
    start = future_hour()
    await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + 4 * H, start + 5 * H)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), (start + 4 * H, start + 5 * H)))
    assert error_info(caught.value)[0] == "SLOT_UNAVAILABLE"
    # The free first range was not kept by the failed request.
    again = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert again.state == pb.Hold.HELD


async def test_hold_slots_is_idempotent_by_request_id(stub):
    place = await create_place(stub)
    start = future_hour()
    request = hold_request(place.id, (start, start + H))
    first = await As(stub, SERVICE).HoldSlots(request)
    retry = await As(stub, SERVICE).HoldSlots(request)
    assert retry.id == first.id
    request.ranges[0].end_time.seconds += 3600
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[0] == "IDEMPOTENCY_KEY_REUSED"


async def test_confirm_and_release_follow_the_state_machine_and_repeat_safely(stub, lock_readings):
    place = await create_place(stub)
    start = future_hour()
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    confirm = pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id)
    confirmed = await As(stub, SERVICE).ConfirmHold(confirm)
    assert confirmed.state == pb.Hold.CONFIRMED and not confirmed.HasField("expire_time")
    assert (await As(stub, SERVICE).ConfirmHold(confirm)).state == pb.Hold.CONFIRMED
    release = pb.ReleaseHoldRequest(request_id=rid(), hold_id=hold.id, reason="booking_cancelled")
    released = await As(stub, SERVICE).ReleaseHold(release)
    assert released.state == pb.Hold.RELEASED and released.release_reason == "booking_cancelled"
    assert (await As(stub, SERVICE).ReleaseHold(pb.ReleaseHoldRequest(request_id=rid(), hold_id=hold.id))).state == (
        pb.Hold.RELEASED
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).ConfirmHold(pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id))
    assert error_info(caught.value)[0] == "ILLEGAL_HOLD_TRANSITION"
    # Freed: the range can be held again.
    assert (await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))).state == pb.Hold.HELD
    got = await stub.GetHold(pb.GetHoldRequest(id=hold.id))
    assert got.state == pb.Hold.RELEASED
    for op in ("ConfirmHold", "ReleaseHold", "GetHold"):
        readings = [r for r in lock_readings() if r.operation == op]
        assert readings and all(
            (r.relation_locks <= 16 and r.advisory_locks <= 1) if r.wrote else r.total_locks <= 10 for r in readings
        )


async def test_an_expired_hold_never_blocks_and_cannot_be_confirmed(stub, availability_server):
    place = await create_place(stub)
    start = future_hour()
    deps = availability_server.deps
    real_clock = deps.clock
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), ttl=dur(minutes=1)))
    # Move the service's clock past the expiry instead of sleeping.
    deps.clock = lambda: real_clock() + timedelta(minutes=2)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await As(stub, SERVICE).ConfirmHold(pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id))
        assert error_info(caught.value)[0] == "HOLD_EXPIRED"
        assert (await stub.GetHold(pb.GetHoldRequest(id=hold.id))).state == pb.Hold.EXPIRED
        taker = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
        assert taker.state == pb.Hold.HELD
    finally:
        deps.clock = real_clock
    released = await As(stub, SERVICE).ReleaseHold(pb.ReleaseHoldRequest(request_id=rid(), hold_id=hold.id))
    assert released.state == pb.Hold.EXPIRED


async def test_a_block_covers_the_units_a_place_is_given_later(stub, lock_readings):
    from google.protobuf import field_mask_pb2

    owner = host()
    place = await create_place(stub, owner, unit_count=2)
    start = future_hour(days=9)
    block = await As(stub, owner).BlockTime(
        pb.BlockTimeRequest(request_id=rid(), place_id=place.id, ranges=[trange(start, start + H)], reason="works")
    )
    grown = pb.Place(id=place.id, unit_count=3)
    mask = field_mask_pb2.FieldMask(paths=["unit_count"])
    await As(stub, owner).UpdatePlace(pb.UpdatePlaceRequest(request_id=rid(), place=grown, update_mask=mask))
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # the third unit was free: the blocked hour booked
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert error_info(caught.value)[0] == "SLOT_UNAVAILABLE"
    # Next to the block the three units are free, and unblocking frees all three.
    assert (await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + H, start + 2 * H), units=3))).id
    await As(stub, owner).UnblockTime(pb.UnblockTimeRequest(request_id=rid(), block_id=block.id))
    assert (await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), units=3))).id
    readings = [r for r in lock_readings() if r.operation == "UpdatePlace"]
    assert readings and all(r.relation_locks <= 16 and r.advisory_locks <= 1 for r in readings)


async def test_the_sweeper_flips_expired_holds_in_batches(stub, availability_server):
    from availability.service_layer.handlers import sweep_expired_holds

    place = await create_place(stub)
    start = future_hour(days=5)
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), ttl=dur(minutes=1)))
    deps = availability_server.deps
    real_clock = deps.clock
    deps.clock = lambda: real_clock() + timedelta(minutes=2)
    try:
        while await sweep_expired_holds(deps, 50):
            pass
    finally:
        deps.clock = real_clock
    got = await stub.GetHold(pb.GetHoldRequest(id=hold.id))
    assert got.state == pb.Hold.EXPIRED


async def test_the_sweeper_and_a_hold_freeing_the_same_expired_rows_do_not_deadlock(
    stub, availability_server, infra, database
):
    """HoldSlots takes an expired hold's calendar rows, then its hold row; the sweeper takes the
    hold row, then the calendar rows. The sweeper gives its batch up at once when a row is taken,
    so the two never wait for each other in a cycle (before: PostgreSQL ended one of them as a
    deadlock after a second)."""
    from availability.service_layer.handlers import sweep_expired_holds
    from kit.provision import admin_dsn

    place = await create_place(stub)
    start = future_hour(days=6)
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), ttl=dur(minutes=1)))
    deps = availability_server.deps
    real_clock = deps.clock
    deps.clock = lambda: real_clock() + timedelta(minutes=2)
    other = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        # HoldSlots' first statement: the expired hold's rows out of the calendar (not committed).
        async with other.transaction():
            await other.execute(
                "UPDATE availability.calendar_entries SET live = false WHERE hold_id = $1::uuid AND live", hold.id
            )
            sweeping = asyncio.create_task(sweep_expired_holds(deps, 50))
            pid = await other.fetchval("SELECT pg_backend_pid()")
            blocked = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"

            async def sweeper_done_or_waiting():  # ...for this transaction
                return sweeping.done() or await other.fetchval(blocked, pid)

            await wait_until(sweeper_done_or_waiting, timeout_s=20)
            # Its second: the hold itself, which the sweeper let go of.
            flipped = await other.execute(
                "UPDATE availability.holds SET state = 'expired' WHERE id = $1::uuid AND state = 'held'", hold.id
            )
        assert await sweeping == 0 and flipped == "UPDATE 1"
    finally:
        deps.clock = real_clock
        await other.close()
    assert (await stub.GetHold(pb.GetHoldRequest(id=hold.id))).state == pb.Hold.EXPIRED
    live = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert live.state == pb.Hold.HELD  # the range is free again


async def test_buffers_keep_the_gap_between_holds(stub):
    from availability_helpers import all_week

    schedule = pb.Schedule(opening_hours=all_week(), buffer_after=dur(minutes=30))
    place = await create_place(stub, schedule=schedule)
    start = future_hour()
    await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + H, start + 2 * H)))
    assert error_info(caught.value)[0] == "SLOT_UNAVAILABLE"
    later = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + H + H / 2, start + 3 * H)))
    assert later.state == pb.Hold.HELD


async def test_several_units_are_held_independently_and_the_last_one_runs_out(stub):
    place = await create_place(stub, unit_count=3)
    start = future_hour()
    two = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), units=2))
    one = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert two.units == 2 and one.units == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert error_info(caught.value)[0] == "SLOT_UNAVAILABLE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + 2 * H, start + 3 * H), units=4))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "shift, reason",
    [
        ((timedelta(minutes=10), timedelta(hours=1, minutes=10)), "INVALID_TIME_RANGE"),
        ((timedelta(hours=1), timedelta(0)), "INVALID_TIME_RANGE"),
        ((timedelta(days=-10), timedelta(days=-10, hours=-1) + 2 * H), "INSUFFICIENT_NOTICE"),
        ((timedelta(days=400), timedelta(days=400, hours=1)), "OUTSIDE_BOOKING_WINDOW"),
        ((timedelta(0), timedelta(days=2)), "INVALID_DURATION"),
    ],
)
async def test_ranges_breaking_the_schedule_are_refused_with_their_reason(stub, shift, reason):
    place = await create_place(stub)
    start = future_hour()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + shift[0], start + shift[1])))
    assert error_info(caught.value)[0] == reason


async def test_closed_hours_are_outside_opening_hours(stub):
    from availability_helpers import all_week

    place = await create_place(stub, time_zone="UTC", schedule=pb.Schedule(opening_hours=all_week(9, 17)))
    start = future_hour(hour=18)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert error_info(caught.value)[0] == "OUTSIDE_OPENING_HOURS"


async def test_holding_an_inactive_or_unknown_place_fails_cleanly(stub):
    owner = host()
    place = await create_place(stub, owner)
    await As(stub, owner).DeletePlace(pb.DeletePlaceRequest(request_id=rid(), id=place.id))
    start = future_hour()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert error_info(caught.value)[0] == "PLACE_INACTIVE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(str(uuid.uuid4()), (start, start + H)))
    assert error_info(caught.value)[0] == "PLACE_NOT_FOUND"


async def test_blocks_are_for_owners_and_take_every_unit_until_unblocked(stub, lock_readings):
    owner = host()
    place = await create_place(stub, owner, unit_count=2)
    start = future_hour()
    block_request = pb.BlockTimeRequest(
        request_id=rid(), place_id=place.id, ranges=[trange(start, start + H)], reason="paint"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, host()).BlockTime(block_request)
    assert error_info(caught.value)[0] == "NOT_PLACE_OWNER"
    block = await As(stub, owner).BlockTime(block_request)
    assert block.state == pb.Block.ACTIVE and (await As(stub, owner).BlockTime(block_request)).id == block.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert error_info(caught.value)[0] == "SLOT_UNAVAILABLE"
    entries = await As(stub, owner).ListCalendarEntries(
        pb.ListCalendarEntriesRequest(place_id=place.id, time_range=trange(start - H, start + 2 * H))
    )
    assert [(e.kind, e.block_id, e.units, e.reason) for e in entries.entries] == [
        (pb.CalendarEntry.BLOCK, block.id, 2, "paint")
    ]
    ics = await As(stub, owner).ExportCalendar(pb.ExportCalendarRequest(place_id=place.id))
    assert f"UID:{block.id}-1@reserva" in ics.ics_content and "BEGIN:VCALENDAR" in ics.ics_content
    unblock = pb.UnblockTimeRequest(request_id=rid(), block_id=block.id)
    removed = await As(stub, owner).UnblockTime(unblock)
    assert removed.state == pb.Block.REMOVED
    assert (await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))).state == pb.Hold.HELD
    for op in ("BlockTime", "UnblockTime", "ListCalendarEntries", "ExportCalendar"):
        readings = [r for r in lock_readings() if r.operation == op]
        assert readings and all(
            (r.relation_locks <= 16 and r.advisory_locks <= 1) if r.wrote else r.total_locks <= 10 for r in readings
        )


async def test_two_hundred_concurrent_holds_leave_one_live_hold_per_range_and_no_overlap(stub, infra, database):
    place = await create_place(stub)
    base = future_hour(days=10, hour=0)
    # 200 requests over 10 one-hour slots: each asks for one or two neighbouring hours.
    requests = []
    for n in range(200):
        first = n % 10
        last = min(first + 1 + (n % 2), 10)
        requests.append(hold_request(place.id, (base + first * H, base + last * H)))

    async def attempt(request):
        try:
            return await As(stub, SERVICE).HoldSlots(request)
        except grpc.aio.AioRpcError as error:
            return error

    outcomes = await asyncio.gather(*(attempt(r) for r in requests))
    won = [o for o in outcomes if isinstance(o, pb.Hold)]
    lost = [o for o in outcomes if not isinstance(o, pb.Hold)]
    assert won and all(e.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED) for e in lost)
    assert all(error_info(e)[0] in ("SLOT_UNAVAILABLE", "CONCURRENT_MODIFICATION") for e in lost)
    held_hours = sorted(r.start_time.seconds for h in won for r in h.ranges)
    conn = await asyncpg.connect(infra.admin_database_url.replace("+asyncpg", "").rsplit("/", 1)[0] + f"/{database}")
    try:
        overlapping = await conn.fetchval(
            """SELECT count(*) FROM availability.calendar_entries a JOIN availability.calendar_entries b
                 ON a.place_id = b.place_id AND a.unit = b.unit AND a.id < b.id AND a.during && b.during
              WHERE a.live AND b.live AND a.place_id = $1""",
            uuid.UUID(place.id),
        )
        live_rows = await conn.fetchval(
            "SELECT count(*) FROM availability.calendar_entries WHERE live AND place_id = $1", uuid.UUID(place.id)
        )
    finally:
        await conn.close()
    assert overlapping == 0
    assert live_rows == sum(len(h.ranges) for h in won) == len(held_hours)
    assert len(set(held_hours)) == len(held_hours)  # one live hold per range
    # Every hour that some request wanted alone is taken (nobody left it free by mistake).
    assert sum((h.ranges[-1].end_time.seconds - h.ranges[0].start_time.seconds) for h in won) <= 10 * 3600


async def test_strangers_cannot_read_or_export_a_place_calendar(stub):
    place = await create_place(stub)
    start = future_hour()
    window = trange(start, start + H)
    for call in (
        As(stub, host()).ListCalendarEntries(pb.ListCalendarEntriesRequest(place_id=place.id, time_range=window)),
        As(stub, host()).ExportCalendar(pb.ExportCalendarRequest(place_id=place.id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_held_and_confirmed_holds_appear_in_the_calendar_and_its_export(stub):
    owner = host()
    place = await create_place(stub, owner)
    start = future_hour()
    held = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    confirmed = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + 2 * H, start + 3 * H)))
    await As(stub, SERVICE).ConfirmHold(pb.ConfirmHoldRequest(request_id=rid(), hold_id=confirmed.id))
    entries = await As(stub, owner).ListCalendarEntries(
        pb.ListCalendarEntriesRequest(place_id=place.id, time_range=trange(start, start + 4 * H), page_size=1)
    )
    assert [(e.hold_id, e.hold_state) for e in entries.entries] == [(held.id, pb.Hold.HELD)]
    rest = await As(stub, owner).ListCalendarEntries(
        pb.ListCalendarEntriesRequest(
            place_id=place.id, time_range=trange(start, start + 4 * H), page_size=1, page_token=entries.next_page_token
        )
    )
    assert [(e.hold_id, e.hold_state) for e in rest.entries] == [(confirmed.id, pb.Hold.CONFIRMED)]
    ics = (await As(stub, owner).ExportCalendar(pb.ExportCalendarRequest(place_id=place.id))).ics_content
    assert f"UID:{held.id}-1@reserva" in ics and "STATUS:TENTATIVE" in ics and "STATUS:CONFIRMED" in ics


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("America/New_York", datetime(1, 1, 1, tzinfo=UTC)),  # local time before year 1
        ("Asia/Kolkata", datetime(9999, 12, 31, 22, tzinfo=UTC) - 23 * H),  # local days after year 9999
        ("UTC", datetime(9500, 1, 1, tzinfo=UTC)),
    ],
)
async def test_times_at_the_ends_of_the_calendar_are_invalid_argument_for_holds_and_search(stub, zone, start):
    """Local days around such a time overflow the datetime range: this answered INTERNAL."""
    place = await create_place(stub, time_zone=zone)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[0] == "INVALID_TIME_RANGE"
    # A day's window (the test's own arithmetic stays inside the calendar).
    search = pb.SearchAvailabilityRequest(city=place.city, window=trange(start, start + 24 * H), duration=dur(hours=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SearchAvailability(search)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[0] == "INVALID_TIME_RANGE"
