"""SearchAvailability answers, page by page, exactly what ListFreeSlots answers place by place.

A city of places with several schedules (shared and unique ones, zones with DST, a schedule open
across midnight, blocked weekdays and dates, minimum notice, buffers) and several units, whose
calendars carry holds of one or more units, confirmed holds, blocks and expired holds. Searches over
windows that cross a DST transition, for one and for several units, are compared with the place's
own ListFreeSlots (the oracle): the same places, the same slots, in the order the API promises
(earliest free slot, then rating descending, then id)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import grpc
from availability_helpers import SERVICE, As, create_place, dur, hm, hold_request, host, pdate, rid, trange
from google.protobuf import field_mask_pb2

from kit.cache import CACHE_STATS
from kit.provision import admin_dsn
from reserva.availability.v1 import availability_pb2 as pb

H = timedelta(hours=1)


def next_transition(zone: str, now: datetime) -> date:
    """The first local date after `now` + 3 days on which the zone's UTC offset changes."""
    tz = ZoneInfo(zone)
    day = (now + timedelta(days=3)).astimezone(tz).date()
    for _ in range(366):
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
        if noon.utcoffset() != (noon - timedelta(days=1)).utcoffset():
            return day
        day += timedelta(days=1)
    raise AssertionError(f"no DST transition in {zone} within a year")


def week(intervals: list[tuple[int, int]], weekdays=range(1, 8)) -> list[pb.OpeningInterval]:
    return [pb.OpeningInterval(weekday=d, start=hm(a), end=hm(b)) for d in weekdays for a, b in intervals]


def schedules(blocked: date) -> dict[str, tuple[str, pb.Schedule]]:
    """Name -> (time zone, schedule)."""
    return {
        "office": ("UTC", pb.Schedule(opening_hours=week([(8, 18)], range(1, 6)), slot_granularity=dur(hours=1))),
        "barber": (
            "Europe/Paris",
            pb.Schedule(
                opening_hours=week([(9, 12), (13, 19)]),
                slot_granularity=dur(minutes=30),
                buffer_before=dur(minutes=15),
                buffer_after=dur(minutes=30),
                minimum_notice=dur(hours=3),
            ),
        ),
        "night": (
            "America/New_York",
            pb.Schedule(
                opening_hours=week([(0, 3), (20, 24)]),
                slot_granularity=dur(minutes=30),
                blocked_weekdays=[3],
                blocked_dates=[pdate(blocked)],
                buffer_after=dur(hours=1),
            ),
        ),
        "allday": ("Europe/Paris", pb.Schedule(opening_hours=week([(0, 24)]), slot_granularity=dur(hours=1))),
        "allday-ny": (
            "America/New_York",
            pb.Schedule(opening_hours=week([(0, 24)]), slot_granularity=dur(hours=1), buffer_before=dur(hours=1)),
        ),
    }


async def free_slots(stub, place: pb.Place, window: tuple[datetime, datetime], hours: int, units: int) -> list:
    """The oracle: the place's own free slots of the window, earliest first."""
    tz = ZoneInfo(place.time_zone)
    request = pb.ListFreeSlotsRequest(
        place_id=place.id,
        start_date=pdate(window[0].astimezone(tz).date()),
        end_date=pdate(window[1].astimezone(tz).date()),
        duration=dur(hours=hours),
        units=units,
        page_size=200,
    )
    slots = []
    while True:
        reply = await stub.ListFreeSlots(request)
        slots += [(s.range.start_time.ToDatetime(UTC), s.range.end_time.ToDatetime(UTC)) for s in reply.slots]
        if not reply.next_page_token:
            return [s for s in slots if window[0] <= s[0] and s[1] <= window[1]]
        request.page_token = reply.next_page_token


async def search_all(stub, city: str, window, hours: int, units: int, max_slots: int, page_size: int) -> list:
    request = pb.SearchAvailabilityRequest(
        city=city,
        window=trange(*window),
        duration=dur(hours=hours),
        units=units,
        max_slots_per_place=max_slots,
        page_size=page_size,
    )
    found = []
    for _ in range(100):  # a page token that never ends fails the test instead of hanging it
        reply = await stub.SearchAvailability(request)
        assert len(reply.results) <= page_size
        found += [
            (
                r.place.id,
                r.place.rating_average,
                [(s.start_time.ToDatetime(UTC), s.end_time.ToDatetime(UTC)) for s in r.next_free_slots],
            )
            for r in reply.results
        ]
        if not reply.next_page_token:
            return found
        request.page_token = reply.next_page_token
    raise AssertionError("the pages never ended")


async def test_search_pages_match_every_places_own_free_slots(stub, availability_server, infra, database):
    deps = availability_server.deps
    real_clock = deps.clock
    start = real_clock().replace(second=0, microsecond=0)
    deps.clock = lambda: start
    rng = random.Random(20261122)
    city = f"Oracle-{uuid.uuid4().hex[:6]}"
    paris, new_york = next_transition("Europe/Paris", start), next_transition("America/New_York", start)
    # Window starts between 12 and 36 hours before the transition day, lasting up to 3 days.
    windows = [
        (datetime.combine(day, datetime.min.time(), UTC) - timedelta(hours=lead), hours)
        for day in (paris, new_york)
        for lead, hours in ((12, 60), (30, 72))
    ]
    kinds = schedules(blocked=new_york)
    plan = ["office", "office", "barber", "barber", "barber", "night", "night", "allday", "allday", "allday"]
    plan += ["allday", "allday-ny", "allday-ny", "night"]
    # Places left without any entry share their group's first slots: pages cut through them.
    plan += ["allday"] * 5 + ["office"] * 2 + ["allday-ny"]
    untouched = set(range(len(plan) - 8, len(plan)))
    places: list[pb.Place] = []
    owners = {}
    admin = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        for n, kind in enumerate(plan):
            zone, schedule = kinds[kind]
            owner = host()
            place = await create_place(
                stub, owner=owner, city=city, time_zone=zone, schedule=schedule, unit_count=1 + n % 3
            )
            places.append(place)
            owners[place.id] = owner
            for rating in rng.sample([3, 4, 4, 5, 5], k=n % 3):
                await As(stub, SERVICE).ApplyRating(
                    pb.ApplyRatingRequest(request_id=rid(), place_id=place.id, rating=rating)
                )
            if n not in untouched:
                await _occupy(stub, place, owner, windows, rng)
        # A place whose only hold at its first slot sits on its third unit, then shrinks to two
        # units: that hold no longer takes anything.
        shrunk = next(p for p in places if p.unit_count == 3)
        await _strand_the_last_unit(stub, shrunk, owners[shrunk.id], windows[0])
        # One place out of every search: deleted.
        gone = await As(stub, owners[places[-1].id]).DeletePlace(
            pb.DeletePlaceRequest(id=places[-1].id, request_id=rid())
        )
        assert not gone.active
        live = [p for p in places if p.id != gone.id]
        ids = [p.id for p in live]
        # The short holds expire: the service's clock moves past them. Their rows stay live (the
        # test locks the holds, so the sweeper, which skips locked ones, leaves them): neither the
        # search nor ListFreeSlots may count them.
        await admin.execute("BEGIN")
        await admin.fetch(
            "SELECT id FROM availability.holds WHERE place_id = ANY($1::uuid[]) AND state = 'held' FOR UPDATE", ids
        )
        later = start + timedelta(minutes=2)
        deps.clock = lambda: later
        stale = await admin.fetchval(
            "SELECT count(*) FROM availability.calendar_entries WHERE place_id = ANY($1::uuid[]) AND live "
            "AND expires_at <= $2",
            ids,
            later,
        )
        assert stale > 0
        reply = await stub.GetPlaces(pb.GetPlacesRequest(ids=ids))
        ratings = {p.id: p.rating_average for p in reply.places}
        assert len(set(ratings.values())) > 1
        compared = 0
        for window_start, hours in windows:
            window = (window_start, window_start + timedelta(hours=hours))
            for duration, units, max_slots, page_size in ((1, 1, 4, 3), (2, 2, 3, 5), (1, 1, 1, 200)):
                expected = []
                for place in live:
                    slots = (await free_slots(stub, place, window, duration, units))[:max_slots]
                    if slots:
                        expected.append((place.id, ratings[place.id], slots))
                expected.sort(key=lambda hit: (hit[2][0][0], -hit[1], hit[0]))
                got = await search_all(stub, city, window, duration, units, max_slots, page_size)
                assert got == expected, (window, duration, units)
                # The same pages again come from the cache, and say the same. Another server of this
                # test process may bump the calendar's version meanwhile (its sweeper freeing an
                # earlier test's holds), which rightly misses: a few tries.
                for _ in range(3):
                    hits_before = CACHE_STATS["hit"]
                    assert await search_all(stub, city, window, duration, units, max_slots, page_size) == got
                    if CACHE_STATS["hit"] > hits_before:
                        break
                else:
                    raise AssertionError("the repeated search never came from the cache")
                compared += len(expected)
        assert compared > 50  # the comparison had places to compare
    finally:
        deps.clock = real_clock
        await admin.close()


async def _strand_the_last_unit(stub, place: pb.Place, owner, window_spec) -> None:
    window = (window_spec[0], window_spec[0] + timedelta(hours=window_spec[1]))
    a, b = (await free_slots(stub, place, window, 1, 3))[0]
    holds = [await As(stub, SERVICE).HoldSlots(hold_request(place.id, (a, b), ttl=dur(hours=2))) for _ in range(3)]
    for hold in holds[:2]:
        await As(stub, SERVICE).ReleaseHold(pb.ReleaseHoldRequest(request_id=rid(), hold_id=hold.id))
    await As(stub, owner).UpdatePlace(
        pb.UpdatePlaceRequest(
            request_id=rid(),
            place=pb.Place(id=place.id, unit_count=2),
            update_mask=field_mask_pb2.FieldMask(paths=["unit_count"]),
        )
    )
    assert (await free_slots(stub, place, window, 1, 2))[0] == (a, b)


async def _occupy(stub, place: pb.Place, owner, windows, rng: random.Random) -> None:
    """Holds (some of several units, some confirmed, some expiring within a minute) and blocks in
    the searched windows, taken from the place's own free slots so the schedule accepts them."""
    for window_start, hours in windows:
        window = (window_start, window_start + timedelta(hours=hours))
        free = await free_slots(stub, place, window, 1, 1)
        if not free:
            continue
        # The earliest slots are taken more often: they decide the order of the results.
        picks = free[:3] + rng.sample(free, k=min(4, len(free)))
        for n, (a, b) in enumerate(picks):
            choice = rng.random()
            if choice < 0.15:
                request = pb.BlockTimeRequest(request_id=rid(), place_id=place.id, ranges=[trange(a, b)])
                call = As(stub, owner).BlockTime(request)
            else:
                units = rng.randint(1, place.unit_count)
                ttl = dur(minutes=1) if choice < 0.35 else dur(hours=2)
                call = As(stub, SERVICE).HoldSlots(hold_request(place.id, (a, b), units=units, ttl=ttl))
            try:
                hold = await call
            except grpc.aio.AioRpcError as error:  # taken by an earlier pick (or its buffers)
                assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, error
                continue
            if isinstance(hold, pb.Hold) and n % 3 == 0 and choice >= 0.35:
                await As(stub, SERVICE).ConfirmHold(pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id))


def test_next_transition_finds_the_day_the_offset_changes():
    day = next_transition("Europe/Paris", datetime(2026, 3, 1, tzinfo=UTC))
    assert day == date(2026, 3, 29)
    assert next_transition("America/New_York", datetime(2026, 10, 1, tzinfo=UTC)) == date(2026, 11, 1)
