"""Validated datetimes -> protobuf Timestamps and TimeRanges (a time protobuf cannot hold is a 422)."""

from __future__ import annotations

from datetime import datetime

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
