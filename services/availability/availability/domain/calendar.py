"""The schedule rules as pure functions: which local times are open, which ranges may be held, and
which slots are free given the busy ranges of each unit.

Local times are converted with zoneinfo. A local time that does not exist (the spring-forward gap)
is never a slot start; an ambiguous one (the fall-back overlap) is read with fold=0, its first
occurrence, so the same request always gives the same instants."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from availability.domain.errors import ScheduleRefusal, invalid
from availability.domain.model import DAY, Schedule, TimeRange


@lru_cache(maxsize=131_072)
def local_to_utc(day: date, minute: int, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time (fold=0), or None if that wall time does not exist."""
    if minute >= 1440:
        day, minute = day + timedelta(days=minute // 1440), minute % 1440
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    instant = wall.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return instant


def _boundary(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """An opening boundary; a boundary inside a DST gap moves to the end of the gap."""
    instant = local_to_utc(day, minute, tz)
    while instant is None:  # gaps are whole minutes long
        minute += 1
        instant = local_to_utc(day, minute, tz)
    return instant


def is_open_day(schedule: Schedule, day: date) -> bool:
    return day not in schedule.blocked_dates and day.isoweekday() not in schedule.blocked_weekdays


def open_periods(schedule: Schedule, tz: ZoneInfo, first: date, last: date) -> list[TimeRange]:
    """Opening hours of local dates first..last as UTC ranges, touching ones merged."""
    periods: list[TimeRange] = []
    day = first
    while day <= last:
        if is_open_day(schedule, day):
            for i in sorted(schedule.opening_hours, key=lambda i: i.start_minute):
                if i.weekday == day.isoweekday():
                    start, end = _boundary(day, i.start_minute, tz), _boundary(day, i.end_minute, tz)
                    if end > start:
                        periods.append(TimeRange(start, end))
        day += DAY
    periods.sort()
    merged: list[TimeRange] = []
    for p in periods:
        if merged and p.start <= merged[-1].end:
            merged[-1] = TimeRange(merged[-1].start, max(merged[-1].end, p.end))
        else:
            merged.append(p)
    return merged


def _within(periods: list[TimeRange], r: TimeRange) -> bool:
    index = bisect_right([p.start for p in periods], r.start) - 1
    return index >= 0 and periods[index].end >= r.end


def duration_fits(schedule: Schedule, duration: timedelta) -> bool:
    return (
        schedule.minimum_duration <= duration <= schedule.maximum_duration
        and duration % schedule.slot_granularity == timedelta(0)
    )


def check_hold_ranges(schedule: Schedule, tz: ZoneInfo, ranges: list[TimeRange], now: datetime) -> None:
    """Every rule a held range must satisfy; ScheduleRefusal (FAILED_PRECONDITION) names the first broken."""
    granularity_min = int(schedule.slot_granularity.total_seconds() // 60)
    for r in ranges:
        shown = f"{r.start.isoformat()}/{r.end.isoformat()}"
        if not duration_fits(schedule, r.duration):
            raise ScheduleRefusal(
                f"{shown}: length must be a multiple of {schedule.slot_granularity} between "
                f"{schedule.minimum_duration} and {schedule.maximum_duration}",
                reason="INVALID_DURATION",
            )
        local = r.start.astimezone(tz)
        if local.second or local.microsecond or (local.hour * 60 + local.minute) % granularity_min:
            raise invalid(
                f"{shown}: must start on a multiple of {schedule.slot_granularity} from local midnight",
                "INVALID_TIME_RANGE",
                "ranges",
            )
        if r.start < now + schedule.minimum_notice:
            raise ScheduleRefusal(
                f"{shown}: starts too soon (minimum notice {schedule.minimum_notice})", reason="INSUFFICIENT_NOTICE"
            )
        if r.start > now + schedule.maximum_advance:
            raise ScheduleRefusal(
                f"{shown}: starts too far ahead (maximum advance {schedule.maximum_advance})",
                reason="OUTSIDE_BOOKING_WINDOW",
            )
        day = local.date()
        if (schedule.first_bookable_date and day < schedule.first_bookable_date) or (
            schedule.last_bookable_date and day > schedule.last_bookable_date
        ):
            raise ScheduleRefusal(f"{shown}: outside the bookable dates", reason="OUTSIDE_BOOKING_WINDOW")
        periods = open_periods(schedule, tz, day - DAY, r.end.astimezone(tz).date())
        if not _within(periods, r):
            raise ScheduleRefusal(f"{shown}: outside opening hours", reason="OUTSIDE_OPENING_HOURS")


@dataclass(frozen=True)
class Busy:
    """Occupied ranges (buffers included) per unit, from the calendar."""

    by_unit: dict[int, list[TimeRange]]

    @classmethod
    def of(cls, entries: Iterable[tuple[int, datetime, datetime]]) -> Busy:
        by_unit: dict[int, list[TimeRange]] = {}
        for unit, start, end in entries:
            by_unit.setdefault(unit, []).append(TimeRange(start, end))
        for ranges in by_unit.values():
            ranges.sort()
        return cls(by_unit)

    def free_units(self, r: TimeRange, unit_count: int) -> list[int]:
        """Units whose busy ranges leave `r` free, lowest first."""
        free = []
        for unit in range(unit_count):
            ranges = self.by_unit.get(unit)
            if not ranges or not _overlaps_any(ranges, r):
                free.append(unit)
        return free

    def conflicts(self, r: TimeRange) -> list[TimeRange]:
        return sorted({b for ranges in self.by_unit.values() for b in ranges if b.overlaps(r)})


def _overlaps_any(sorted_ranges: list[TimeRange], r: TimeRange) -> bool:
    # Ranges of one unit never overlap each other (the exclusion constraint), so sorted by start they
    # are sorted by end too: only the last one starting before r.end can reach into r.
    index = bisect_right([b.start for b in sorted_ranges], r.end - timedelta(microseconds=1)) - 1
    return index >= 0 and sorted_ranges[index].end > r.start


def free_slots(
    schedule: Schedule,
    tz: ZoneInfo,
    first: date,
    last: date,
    duration: timedelta,
    now: datetime,
    busy: Busy,
    unit_count: int,
    units: int = 1,
    window: TimeRange | None = None,
    limit: int | None = None,
) -> list[TimeRange]:
    """Bookable slots of exactly `duration` starting on local dates first..last, earliest first,
    stepping by the granularity; inside `window` when given; at most `limit`."""
    if units > unit_count:
        return []
    candidates = candidate_slots(schedule, tz, first, last, duration, now, window)
    return unoccupied(candidates, schedule, busy, unit_count, units, limit)


def unoccupied(
    candidates: list[TimeRange], schedule: Schedule, busy: Busy, unit_count: int, units: int, limit: int | None
) -> list[TimeRange]:
    """The candidates that `units` units can still take, buffers included, at most `limit`."""
    found: list[TimeRange] = []
    for slot in candidates:
        if not busy.by_unit:
            found.append(slot)
        else:
            guarded = slot.widened(schedule.buffer_before, schedule.buffer_after)
            if len(busy.free_units(guarded, unit_count)) >= units:
                found.append(slot)
        if limit is not None and len(found) >= limit:
            break
    return found


def candidate_slots(
    schedule: Schedule,
    tz: ZoneInfo,
    first: date,
    last: date,
    duration: timedelta,
    now: datetime,
    window: TimeRange | None = None,
) -> list[TimeRange]:
    """Every slot the schedule allows (ignoring the calendar), earliest first. Places sharing a
    schedule and zone share this list, which is what makes a search over thousands cheap."""
    if not duration_fits(schedule, duration):
        return []
    step = int(schedule.slot_granularity.total_seconds() // 60)
    periods = open_periods(schedule, tz, first - DAY, last + timedelta(days=duration.days + 2))
    earliest, latest = now + schedule.minimum_notice, now + schedule.maximum_advance
    slots: list[TimeRange] = []
    day = first
    while day <= last:
        if _bookable_date(schedule, day):
            for interval in sorted(schedule.opening_hours, key=lambda i: i.start_minute):
                if interval.weekday != day.isoweekday():
                    continue
                low, high = _minute_bounds(day, interval.start_minute, interval.end_minute, tz, window)
                minute = -(-low // step) * step
                while minute < high:
                    start = local_to_utc(day, minute, tz)
                    minute += step
                    if start is None or start < earliest or start > latest:
                        continue
                    slot = TimeRange(start, start + duration)
                    if window is not None and not (window.start <= slot.start and slot.end <= window.end):
                        continue
                    if _within(periods, slot):
                        slots.append(slot)
        day += DAY
    slots.sort()
    return slots


@dataclass(frozen=True)
class SlotGroup:
    """What every place sharing one schedule and time zone has in common in a search: its candidate
    slots (earliest first), each candidate widened by the schedule's buffers, and two calendar spans.
    A place with no live entry inside `clear` has its first `limit` candidates free, whatever its
    units; any other place's free slots are decided by its own entries inside `full`."""

    candidates: list[TimeRange]
    guarded: list[TimeRange]
    clear: TimeRange
    full: TimeRange


def slot_group(
    schedule: Schedule, tz: ZoneInfo, window: TimeRange, duration: timedelta, now: datetime, limit: int
) -> SlotGroup | None:
    """The slot group of a schedule for a search window; None when the window has no candidate."""
    first, last = window.start.astimezone(tz).date(), window.end.astimezone(tz).date()
    candidates = candidate_slots(schedule, tz, first, last, duration, now, window)
    if not candidates:
        return None
    guarded = [c.widened(schedule.buffer_before, schedule.buffer_after) for c in candidates]
    # One duration for all candidates: sorted by start, they are sorted by end too.
    return SlotGroup(
        candidates,
        guarded,
        TimeRange(guarded[0].start, guarded[: max(limit, 1)][-1].end),
        TimeRange(guarded[0].start, guarded[-1].end),
    )


def _bookable_date(schedule: Schedule, day: date) -> bool:
    if schedule.first_bookable_date and day < schedule.first_bookable_date:
        return False
    if schedule.last_bookable_date and day > schedule.last_bookable_date:
        return False
    return is_open_day(schedule, day)


def _minute_bounds(day: date, start: int, end: int, tz: ZoneInfo, window: TimeRange | None) -> tuple[int, int]:
    """The part of a local interval worth trying for slot starts inside `window` (with a margin of
    three hours for offset changes on the day), so a narrow search converts few local times."""
    if window is None:
        return start, end
    midnight = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    lo = int((window.start - midnight).total_seconds() // 60) - 180
    hi = int((window.end - midnight).total_seconds() // 60) + 180
    return max(start, lo), min(end, hi)


def guarded(ranges: list[TimeRange], before: timedelta, after: timedelta) -> list[TimeRange]:
    """The calendar ranges of one hold: each sorted range widened by the buffers, except where two
    ranges of the same hold are closer than the buffers (they would collide with each other):
    there the widening stops at the neighbour, so one hold never conflicts with itself."""
    result: list[TimeRange] = []
    for i, r in enumerate(ranges):
        start = r.start - before
        if result:
            start = max(start, result[-1].end)
        end = r.end + after
        if i + 1 < len(ranges):
            end = max(r.end, min(end, ranges[i + 1].start - before, ranges[i + 1].start))
        result.append(TimeRange(min(start, r.start), end))
    return result
