"""HoldSlots' fast path (one range, one unit, a place this process has seen): one statement that
writes the hold, its calendar row and its events, or nothing. Run on the strict server (the
statement inside a measured transaction) and on one whose probe measures nothing (the statement
sent alone, without BEGIN/COMMIT)."""

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import pytest
from availability_helpers import (
    SERVICE,
    As,
    all_week,
    create_place,
    dur,
    error_info,
    future_hour,
    hold_request,
    host,
    rid,
)
from google.protobuf import field_mask_pb2

from availability.bootstrap import start
from availability.config import AvailabilitySettings
from kit.provision import admin_dsn
from reserva.availability.v1 import availability_pb2 as pb
from reserva.availability.v1 import availability_pb2_grpc

H = timedelta(hours=1)


@pytest.fixture(scope="module")
async def unmeasured_server(settings_for):
    settings = settings_for(
        "availability",
        AvailabilitySettings,
        lock_probe_strict=False,
        lock_probe_sample_rate=0.0,
        sweeper_enabled=False,
        db_pool_size=1,
        db_max_overflow=3,
    )
    running = await start(settings)
    yield running
    await running.stop(0)


@pytest.fixture(params=["measured", "unmeasured"])
async def server(request, availability_server, unmeasured_server):
    running = availability_server if request.param == "measured" else unmeasured_server
    async with grpc.aio.insecure_channel(running.address) as channel:
        yield running, availability_pb2_grpc.AvailabilityServiceStub(channel)


@pytest.fixture
async def admin(infra, database):
    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    yield conn
    await conn.close()


async def _seen_place(stub, owner=None, **overrides):
    """A place with one hold made the full way, so that this process remembers it."""
    place = await create_place(stub, owner, **overrides)
    start = future_hour(days=4, hour=8)
    await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    return place


async def _events_of(admin, place_id: str) -> list[str]:
    return [
        r["event_type"]
        for r in await admin.fetch(
            "SELECT event_type FROM availability.outbox WHERE aggregate_id = $1 "
            "OR aggregate_id IN (SELECT id::text FROM availability.holds WHERE place_id = $1::uuid) ORDER BY id",
            place_id,
        )
    ]


async def test_a_hold_on_a_seen_place_writes_the_hold_its_buffered_row_and_its_events(server, admin):
    running, stub = server
    schedule = pb.Schedule(opening_hours=all_week(), buffer_after=dur(minutes=30))
    place = await _seen_place(stub, schedule=schedule)
    events_before = await _events_of(admin, place.id)
    fast = running.deps.hold_paths["fast"]
    start = future_hour(days=5)
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert running.deps.hold_paths["fast"] == fast + 1  # one statement did it
    assert hold.state == pb.Hold.HELD and hold.create_time.seconds > 0
    row = await admin.fetchrow(
        "SELECT h.state, lower(c.during) AS s, upper(c.during) AS e, upper(c.booked) AS booked_end, c.kind "
        "FROM availability.holds h JOIN availability.calendar_entries c ON c.hold_id = h.id "
        "WHERE h.id = $1::uuid AND c.live",
        hold.id,
    )
    assert row["state"] == "held" and row["kind"] == "hold"
    assert (row["s"], row["e"], row["booked_end"]) == (start, start + H + timedelta(minutes=30), start + H)
    assert (await _events_of(admin, place.id))[len(events_before) :] == ["hold.created", "calendar.changed"]


async def test_a_taken_range_answers_its_conflict_and_writes_nothing_for_the_loser(server, admin):
    _, stub = server
    place = await _seen_place(stub)
    start = future_hour(days=6)
    await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + 2 * H)))
    events_before = await _events_of(admin, place.id)
    loser = rid()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + H, start + 3 * H), request_id=loser))
    reason, _, details = error_info(caught.value)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION and reason == "SLOT_UNAVAILABLE"
    conflict = pb.SlotConflict()
    assert details and details[0].Unpack(conflict)
    assert [(r.start_time.ToDatetime().hour, r.end_time.ToDatetime().hour) for r in conflict.conflicting_ranges] == [
        (start.hour, (start + 2 * H).hour)
    ]
    assert await admin.fetchval("SELECT count(*) FROM availability.holds WHERE request_id = $1", loser) == 0
    assert await _events_of(admin, place.id) == events_before


async def test_a_repeated_request_is_answered_with_its_first_hold(server, admin):
    running, stub = server
    place = await _seen_place(stub)
    start = future_hour(days=7)
    request = hold_request(place.id, (start, start + H))
    first = await As(stub, SERVICE).HoldSlots(request)
    full = running.deps.hold_paths["full"]
    again = await As(stub, SERVICE).HoldSlots(request)
    assert running.deps.hold_paths["full"] == full + 1  # the replay is the full transaction's to answer
    assert again.id == first.id and again.state == pb.Hold.HELD
    count = "SELECT count(*) FROM availability.holds WHERE request_id = $1"
    assert await admin.fetchval(count, request.request_id) == 1


def _conflicting_hours(error: grpc.aio.AioRpcError) -> list[tuple[int, int]]:
    reason, _, details = error_info(error)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and reason == "SLOT_UNAVAILABLE"
    conflict = pb.SlotConflict()
    assert details and details[0].Unpack(conflict)
    return [(r.start_time.ToDatetime().hour, r.end_time.ToDatetime().hour) for r in conflict.conflicting_ranges]


async def test_a_range_seen_taken_is_refused_by_a_read_that_decides_by_the_calendar_not_the_memo(server, admin):
    """A range this process saw taken is read first: refused by that read while it is taken (the
    same answer, nothing written), held as usual once it is free again, and a retry of the hold's
    own request still answers that hold."""
    running, stub = server
    place = await _seen_place(stub, schedule=pb.Schedule(opening_hours=all_week(), buffer_after=dur(hours=1)))
    start = future_hour(days=12)
    request = hold_request(place.id, (start, start + H))
    first = await As(stub, SERVICE).HoldSlots(request)  # its range (buffer included) is now seen taken
    events_before = await _events_of(admin, place.id)
    paths = running.deps.hold_paths
    by_read = paths["refused by a read"]
    for _ in range(3):
        loser = rid()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), request_id=loser))
        assert _conflicting_hours(caught.value) == [(start.hour, (start + 2 * H).hour)]
        assert await admin.fetchval("SELECT count(*) FROM availability.holds WHERE request_id = $1", loser) == 0
    assert paths["refused by a read"] == by_read + 3
    assert await _events_of(admin, place.id) == events_before
    again = await As(stub, SERVICE).HoldSlots(request)  # a retry: its own hold, not a conflict
    assert again.id == first.id and again.state == pb.Hold.HELD

    # Only its buffer touches a live entry: not refused by the read (the place's buffers may have
    # changed since this process remembered them); the usual statement refuses it.
    before = start - 2 * H
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (before + 0.5 * H, start - 0.5 * H)))
    assert _conflicting_hours(caught.value) == [(start.hour, (start + 2 * H).hour)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (before + 0.5 * H, start - 0.5 * H)))
    assert paths["refused by a read"] == by_read + 3

    # Released: the range seen taken is free, and the next request holds it.
    await As(stub, SERVICE).ReleaseHold(pb.ReleaseHoldRequest(request_id=rid(), hold_id=first.id, reason="test"))
    fast = paths["fast"]
    taken_again = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert taken_again.state == pb.Hold.HELD and taken_again.id != first.id
    assert paths["fast"] == fast + 1 and paths["refused by a read"] == by_read + 3


async def test_a_changed_schedule_is_judged_by_the_current_place_not_the_remembered_one(server):
    _, stub = server
    owner = host()
    place = await _seen_place(stub, owner)
    start = future_hour(days=8)
    # The host closes the weekday of `start` after this process remembered the place as open.
    weekday = start.astimezone(ZoneInfo("Europe/Paris")).isoweekday()
    patch = pb.Place(id=place.id, schedule=pb.Schedule(blocked_weekdays=[weekday]))
    mask = field_mask_pb2.FieldMask(paths=["schedule.blocked_weekdays"])
    await As(stub, owner).UpdatePlace(pb.UpdatePlaceRequest(request_id=rid(), place=patch, update_mask=mask))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value)[0] == "OUTSIDE_OPENING_HOURS"


async def test_confirming_a_hold_this_process_made_is_one_statement_with_its_event(server, admin):
    running, stub = server
    place = await _seen_place(stub)
    start = future_hour(days=9)
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    events_before = await _events_of(admin, place.id)
    request = pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id)
    fast = running.deps.hold_paths["confirm fast"]
    confirmed = await As(stub, SERVICE).ConfirmHold(request)
    assert confirmed.state == pb.Hold.CONFIRMED and not confirmed.HasField("expire_time")
    assert running.deps.hold_paths["confirm fast"] == fast + 1
    row = await admin.fetchrow(
        "SELECT h.state, h.expires_at, c.kind, c.expires_at AS row_expires, "
        "  (SELECT operation FROM availability.requests WHERE request_id = $2) AS claimed "
        "FROM availability.holds h JOIN availability.calendar_entries c ON c.hold_id = h.id AND c.live "
        "WHERE h.id = $1::uuid",
        hold.id,
        request.request_id,
    )
    assert tuple(row) == ("confirmed", None, "confirmed", None, "ConfirmHold")
    assert (await _events_of(admin, place.id))[len(events_before) :] == ["hold.confirmed"]
    again = await As(stub, SERVICE).ConfirmHold(request)  # a retry: the same answer, nothing new
    assert again.state == pb.Hold.CONFIRMED and (await _events_of(admin, place.id))[len(events_before) :] == [
        "hold.confirmed"
    ]


async def test_confirming_an_expired_hold_writes_nothing_and_says_expired(server, admin):
    running, stub = server
    place = await _seen_place(stub)
    start = future_hour(days=10)
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), ttl=dur(minutes=1)))
    real_clock = running.deps.clock
    running.deps.clock = lambda: real_clock() + timedelta(minutes=2)
    request = pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await As(stub, SERVICE).ConfirmHold(request)
    finally:
        running.deps.clock = real_clock
    assert error_info(caught.value)[0] == "HOLD_EXPIRED"
    # Not confirmed. (The server's own expiry sweeper, which reads the same moved clock, may have
    # flipped it to expired meanwhile: a write of the sweeper's, not of ConfirmHold's.)
    state = await admin.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", hold.id)
    assert state in ("held", "expired")
    claimed = "SELECT count(*) FROM availability.requests WHERE request_id = $1"
    assert await admin.fetchval(claimed, request.request_id) == 0


async def test_racing_one_statement_holds_never_overlap_nor_leave_a_hold_without_its_row(server, admin):
    """100 concurrent one-range holds over 10 hours of a place this process has seen (so nearly all
    take the one-statement path): the winners' rows never overlap, and every hold row, event and
    calendar row belongs to a winner; a loser left nothing behind."""
    _, stub = server
    place = await _seen_place(stub)
    base = future_hour(days=11, hour=0)
    requests = [hold_request(place.id, (base + (n % 10) * H, base + (n % 10 + 1 + n % 2) * H)) for n in range(100)]

    async def attempt(request):
        try:
            return await As(stub, SERVICE).HoldSlots(request)
        except grpc.aio.AioRpcError as error:
            return error

    outcomes = await asyncio.gather(*(attempt(r) for r in requests))
    won = [o.id for o in outcomes if isinstance(o, pb.Hold)]
    lost = [o for o in outcomes if not isinstance(o, pb.Hold)]
    assert won and all(error_info(e)[0] in ("SLOT_UNAVAILABLE", "CONCURRENT_MODIFICATION") for e in lost)
    window = (base, base + 11 * H)
    overlapping = await admin.fetchval(
        """SELECT count(*) FROM availability.calendar_entries a JOIN availability.calendar_entries b
             ON a.place_id = b.place_id AND a.unit = b.unit AND a.id < b.id AND a.during && b.during
          WHERE a.live AND b.live AND a.place_id = $1::uuid""",
        place.id,
    )
    holds = await admin.fetch(
        "SELECT h.id::text AS id, (SELECT count(*) FROM availability.calendar_entries c"
        "  WHERE c.hold_id = h.id AND c.live) AS live_rows FROM availability.holds h"
        " WHERE h.place_id = $1::uuid AND (h.ranges->0->>0)::timestamptz >= $2 AND (h.ranges->0->>0)::timestamptz < $3",
        place.id,
        *window,
    )
    created = await admin.fetchval(
        "SELECT count(*) FROM availability.outbox WHERE event_type = 'hold.created' AND aggregate_id = ANY($1::text[])",
        [h["id"] for h in holds],
    )
    assert overlapping == 0
    assert sorted(h["id"] for h in holds) == sorted(won) and all(h["live_rows"] == 1 for h in holds)
    assert created == len(won)
