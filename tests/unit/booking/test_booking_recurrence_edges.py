"""Occurrences of a recurring series at the end of the calendar: a series whose count would carry
it past the year 9999 is INVALID_RECURRENCE (it was an OverflowError, answered INTERNAL); a series
bounded by `until` simply stops there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from booking.domain.model import TimeRange
from booking.service_layer.handlers import occurrences
from kit.errors import InvalidArgument

H = timedelta(hours=1)


def hour_at(*when: int) -> TimeRange:
    start = datetime(*when, tzinfo=UTC)
    return TimeRange(start, start + H)


@pytest.mark.parametrize(
    ("first", "frequency", "tz"),
    [
        (hour_at(9999, 12, 30, 10), "daily", "UTC"),
        (hour_at(9999, 12, 20, 10), "weekly", "UTC"),
        (hour_at(9999, 12, 31, 22), "daily", "Pacific/Kiritimati"),  # local time already in year 10000
    ],
)
def test_a_count_carrying_the_series_past_the_year_9999_is_an_invalid_recurrence(first, frequency, tz):
    with pytest.raises(InvalidArgument) as refused:
        occurrences(first, frequency, 3, None, tz)
    assert refused.value.reason == "INVALID_RECURRENCE"


def test_a_series_ending_on_the_last_days_of_the_calendar_is_kept():
    assert [r.start.day for r in occurrences(hour_at(9999, 12, 30, 10), "daily", 2, None, "UTC")] == [30, 31]
    until = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    weekly = occurrences(hour_at(9999, 12, 10, 10), "weekly", 0, until, "Europe/Paris")
    assert [r.start.day for r in weekly] == [10, 17, 24, 31]
