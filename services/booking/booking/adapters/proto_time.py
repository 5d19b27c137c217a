"""Timestamps, durations and ranges between protobuf and the domain."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from booking.domain.errors import invalid
from booking.domain.model import TimeRange
from kit import prototime
from reserva.type.v1 import types_pb2

ts = prototime.optional_timestamp


def from_ts(value: timestamp_pb2.Timestamp) -> datetime:
    return prototime.to_datetime(value)


def duration(value: timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value)
    return out


def range_to_proto(r: TimeRange) -> types_pb2.TimeRange:
    return types_pb2.TimeRange(start_time=ts(r.start), end_time=ts(r.end))


def range_from_proto(r: types_pb2.TimeRange, field: str = "ranges") -> TimeRange:
    if not r.HasField("start_time") or not r.HasField("end_time"):
        raise invalid("INVALID_TIME_RANGE", f"{field}: start_time and end_time are required")
    return TimeRange(from_ts(r.start_time), from_ts(r.end_time))
