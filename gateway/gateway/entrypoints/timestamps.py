"""Validated datetimes -> protobuf Timestamps and TimeRanges (a time protobuf cannot hold is a 422)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from kit import prototime
from kit.errors import InvalidArgument
from reserva.type.v1 import types_pb2


def timestamp(value: datetime, field: str = "time") -> timestamp_pb2.Timestamp:
    try:
        return prototime.timestamp(value)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{field} is out of the supported range", reason="INVALID_TIME_RANGE") from None


def time_range(start: datetime, end: datetime) -> types_pb2.TimeRange:
    return types_pb2.TimeRange(start_time=timestamp(start, "start_time"), end_time=timestamp(end, "end_time"))


def report_window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """A report's window: up to `end` (default now), from `start` (default 30 days before `end`)."""
    end = end or datetime.now(UTC).replace(microsecond=0)
    if start is not None:
        return start, end
    try:
        return end - timedelta(days=30), end
    except OverflowError:  # an end_time in the first 30 days of year 1: no default window before it
        raise InvalidArgument(
            "end_time is too early for the default 30-day window; give start_time", reason="INVALID_TIME_RANGE"
        ) from None
