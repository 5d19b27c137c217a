"""The schedule rules as pure functions, with property tests across DST transitions."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from availability.domain.calendar import (
    Busy,
    candidate_slots,
    check_hold_ranges,
    free_slots,
    local_to_utc,
    open_periods,
    slot_group,
    unoccupied,
)
from availability.domain.errors import ScheduleRefusal
from availability.domain.model import OpeningInterval, Schedule, TimeRange, zone
from kit.errors import InvalidArgument

ZONES = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata", "UTC"]
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def every_day(start_min=0, end_min=1440, **kw) -> Schedule:
    kw.setdefault("maximum_advance", timedelta(days=730))
    return Schedule.with_defaults(opening_hours=[OpeningInterval(d, start_min, end_min) for d in range(1, 8)], **kw)


def test_a_local_time_in_the_spring_forward_gap_does_not_exist():
    paris = ZoneInfo("Europe/Paris")
    assert local_to_utc(date(2024, 3, 31), 2 * 60 + 30, paris) is None
    assert local_to_utc(date(2024, 3, 31), 3 * 60, paris) == datetime(2024, 3, 31, 1, tzinfo=UTC)


def test_an_ambiguous_local_time_is_read_as_its_first_occurrence():
    paris = ZoneInfo("Europe/Paris")
    assert local_to_utc(date(2024, 10, 27), 2 * 60 + 30, paris) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_spring_forward_day_offers_no_slot_in_the_gap_and_fall_back_none_twice():
    paris = ZoneInfo("Europe/Paris")
    spring = free_slots(
        every_day(), paris, date(2024, 3, 31), date(2024, 3, 31), timedelta(minutes=30), NOW, Busy({}), 1
    )
    locals_ = [s.start.astimezone(paris).strftime("%H:%M") for s in spring]
    assert "02:00" not in locals_ and "02:30" not in locals_ and len(spring) == 46
    fall = free_slots(
        every_day(), paris, date(2024, 10, 27), date(2024, 10, 27), timedelta(minutes=30), NOW, Busy({}), 1
    )
    assert len(fall) == 48 and len({s.start for s in fall}) == 48


@settings(max_examples=60, deadline=None)
@given(
    tz_name=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 12, 31)),
    granularity=st.sampled_from([15, 30, 60]),
    slots=st.integers(min_value=1, max_value=4),
    open_from=st.integers(min_value=0, max_value=12),
)
def test_free_slots_are_aligned_open_sorted_and_holdable(tz_name, day, granularity, slots, open_from):
    tz = zone(tz_name)
    schedule = every_day(open_from * 60, 1440, slot_granularity=timedelta(minutes=granularity))
    duration = timedelta(minutes=granularity * slots)
    found = free_slots(schedule, tz, day, day + timedelta(days=2), duration, NOW, Busy({}), 1)
    starts = [s.start for s in found]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    periods = open_periods(schedule, tz, day - timedelta(days=1), day + timedelta(days=4))
    for s in found:
        assert s.duration == duration
        local = s.start.astimezone(tz)
        assert (local.hour * 60 + local.minute) % granularity == 0 and local.second == 0
        assert local.hour * 60 + local.minute >= open_from * 60
        assert any(p.start <= s.start and s.end <= p.end for p in periods)
        # Whatever ListFreeSlots offers, HoldSlots accepts.
        check_hold_ranges(schedule, tz, [s], NOW)


@settings(max_examples=40, deadline=None)
@given(
    tz_name=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 12, 31)),
    busy_hour=st.integers(min_value=0, max_value=23),
    buffer=st.sampled_from([0, 30, 60]),
)
def test_no_free_slot_overlaps_a_busy_range_with_its_buffers(tz_name, day, busy_hour, buffer):
    tz = zone(tz_name)
    schedule = every_day(buffer_before=timedelta(minutes=buffer), buffer_after=timedelta(minutes=buffer))
    start = local_to_utc(day, busy_hour * 60, tz) or local_to_utc(day, busy_hour * 60 + 60, tz)
    taken = TimeRange(start, start + timedelta(hours=1))
    found = free_slots(schedule, tz, day, day, timedelta(hours=1), NOW, Busy.of([(0, taken.start, taken.end)]), 1)
    for s in found:
        assert not s.widened(schedule.buffer_before, schedule.buffer_after).overlaps(taken)


def test_rules_blocked_dates_weekdays_window_notice_and_advance():
    tz = ZoneInfo("UTC")
    monday = date(2024, 1, 8)
    schedule = every_day(
        blocked_dates=[monday],
        blocked_weekdays=[2],
        first_bookable_date=monday,
        last_bookable_date=monday + timedelta(days=3),
        minimum_notice=timedelta(hours=2),
    )
    found = free_slots(
        schedule, tz, monday - timedelta(days=2), monday + timedelta(days=6), timedelta(hours=1), NOW, Busy({}), 1
    )
    assert {s.start.date() for s in found} == {monday + timedelta(days=2), monday + timedelta(days=3)}
    soon = every_day(minimum_notice=timedelta(hours=2), maximum_advance=timedelta(days=1))
    now = datetime(2024, 1, 8, 10, tzinfo=UTC)
    found = free_slots(soon, tz, now.date(), now.date() + timedelta(days=3), timedelta(hours=1), now, Busy({}), 1)
    assert found[0].start == now + timedelta(hours=2) and found[-1].start <= now + timedelta(days=1)


def test_several_opening_intervals_and_several_units():
    tz = ZoneInfo("UTC")
    schedule = Schedule.with_defaults(
        opening_hours=[OpeningInterval(1, 9 * 60, 12 * 60), OpeningInterval(1, 14 * 60, 16 * 60)],
        slot_granularity=timedelta(hours=1),
    )
    monday = date(2024, 1, 8)
    busy = Busy.of([(0, datetime(2024, 1, 8, 9, tzinfo=UTC), datetime(2024, 1, 8, 10, tzinfo=UTC))])
    one_unit = free_slots(schedule, tz, monday, monday, timedelta(hours=1), NOW, busy, 1)
    assert [s.start.hour for s in one_unit] == [10, 11, 14, 15]
    two_units = free_slots(schedule, tz, monday, monday, timedelta(hours=1), NOW, busy, 2)
    assert [s.start.hour for s in two_units] == [9, 10, 11, 14, 15]
    assert free_slots(schedule, tz, monday, monday, timedelta(hours=1), NOW, busy, 2, units=2)[0].start.hour == 10
    # A slot may not straddle the lunch break.
    assert [s.start.hour for s in free_slots(schedule, tz, monday, monday, timedelta(hours=3), NOW, busy, 2)] == [9]


def test_hold_ranges_outside_rules_are_refused_with_their_reason():
    tz = ZoneInfo("UTC")
    schedule = every_day(9 * 60, 17 * 60, minimum_notice=timedelta(hours=1))
    at = datetime(2024, 1, 10, 18, tzinfo=UTC)
    with pytest.raises(ScheduleRefusal) as caught:
        check_hold_ranges(schedule, tz, [TimeRange(at, at + timedelta(hours=1))], NOW)
    assert caught.value.reason == "OUTSIDE_OPENING_HOURS"
    with pytest.raises(InvalidArgument):
        at = datetime(2024, 1, 10, 10, 10, tzinfo=UTC)
        check_hold_ranges(schedule, tz, [TimeRange(at, at + timedelta(hours=1))], NOW)


@pytest.mark.parametrize(
    "change",
    [
        {"slot_granularity": timedelta(minutes=7)},
        {"minimum_duration": timedelta(minutes=45)},
        {"buffer_after": timedelta(hours=25)},
        {"blocked_weekdays": [1, 1]},
        {"opening_hours": [OpeningInterval(1, 60, 120), OpeningInterval(1, 90, 180)]},
    ],
)
def test_invalid_schedules_are_invalid_argument(change):
    schedule = every_day()
    for key, value in change.items():
        setattr(schedule, key, value)
    with pytest.raises(InvalidArgument):
        schedule.validate()


@settings(max_examples=80, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=5),
    before=st.integers(min_value=0, max_value=3),
    after=st.integers(min_value=0, max_value=3),
)
def test_the_ranges_of_one_hold_never_collide_with_each_other_and_keep_their_booked_time(gaps, before, after):
    from availability.domain.calendar import guarded

    half_hour = timedelta(minutes=30)
    ranges, at = [], NOW
    for gap in gaps:
        at += gap * half_hour
        ranges.append(TimeRange(at, at + 2 * half_hour))
        at += 2 * half_hour
    result = guarded(ranges, before * half_hour, after * half_hour)
    for booked, during in zip(ranges, result, strict=True):
        assert during.start <= booked.start and booked.end <= during.end
        assert during.start >= booked.start - before * half_hour and during.end <= booked.end + after * half_hour
    assert all(not a.overlaps(b) for a, b in zip(result, result[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(
    tz_name=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 12, 31)),
    hours=st.integers(min_value=1, max_value=30),
    before=st.sampled_from([0, 15, 60]),
    after=st.sampled_from([0, 30, 90]),
    limit=st.integers(min_value=1, max_value=4),
    taken=st.lists(st.tuples(st.integers(min_value=-180, max_value=2000), st.integers(min_value=15, max_value=240))),
)
def test_a_slot_group_decides_which_places_need_their_own_calendar(tz_name, day, hours, before, after, limit, taken):
    """What the search relies on: a place with nothing inside `clear` has the group's first `limit`
    candidates free, one with nothing inside `full` has them all; the spans hold the buffers."""
    tz = zone(tz_name)
    schedule = every_day(
        6 * 60, 23 * 60, buffer_before=timedelta(minutes=before), buffer_after=timedelta(minutes=after)
    )
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=6)
    window = TimeRange(start, start + timedelta(hours=hours))
    group = slot_group(schedule, tz, window, timedelta(hours=1), NOW, limit)
    if group is None:
        assert (
            candidate_slots(
                schedule, tz, day - timedelta(days=1), day + timedelta(days=2), timedelta(hours=1), NOW, window
            )
            == []
        )
        return
    assert group.guarded == [c.widened(schedule.buffer_before, schedule.buffer_after) for c in group.candidates]
    assert group.clear.start == group.full.start == group.guarded[0].start
    assert group.clear.end == group.guarded[:limit][-1].end and group.full.end == group.guarded[-1].end
    ranges = [TimeRange(start + timedelta(minutes=m), start + timedelta(minutes=m + n)) for m, n in taken]
    outside_clear = Busy.of([(0, r.start, r.end) for r in ranges if not r.overlaps(group.clear)])
    assert unoccupied(group.candidates, schedule, outside_clear, 1, 1, limit) == group.candidates[:limit]
    outside_full = Busy.of([(0, r.start, r.end) for r in ranges if not r.overlaps(group.full)])
    assert unoccupied(group.candidates, schedule, outside_full, 1, 1, None) == group.candidates
