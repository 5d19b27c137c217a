"""kit.prototime gives exactly what protobuf's own FromDatetime / ToDatetime give, across the range
a Timestamp holds, and refuses what it cannot hold."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from kit.prototime import timestamp, to_datetime


def _protobuf(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


@given(
    st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))])
    )
)
def test_the_same_timestamp_as_protobuf_for_any_aware_datetime(value):
    try:
        expected = _protobuf(value)
    except ValueError:
        with pytest.raises(ValueError):
            timestamp(value)
        return
    assert timestamp(value) == expected
    assert to_datetime(expected) == expected.ToDatetime(tzinfo=UTC) == value


@given(st.datetimes())
def test_a_naive_datetime_is_read_as_utc_like_protobuf_does(value):
    assert timestamp(value) == _protobuf(value)


@given(st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999_999))
def test_back_to_datetime_as_protobuf_does(seconds, nanos):
    message = Timestamp(seconds=seconds, nanos=nanos)
    assert to_datetime(message) == message.ToDatetime(tzinfo=UTC)


def test_what_a_timestamp_cannot_hold_is_refused():
    with pytest.raises(ValueError):
        timestamp(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))  # 0000-12-31T23:00Z
    with pytest.raises(OverflowError):
        to_datetime(Timestamp(seconds=10**15))
