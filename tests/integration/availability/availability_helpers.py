"""Helpers of the availability integration tests: call the service through gRPC as a given user,
build requests, read the error details of a failed call."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
from google.rpc import error_details_pb2, status_pb2

from kit.identity import Caller
from reserva.availability.v1 import availability_pb2 as pb
from reserva.type.v1 import types_pb2


class As:
    """Calls the service as one caller: `await As(stub, host).CreatePlace(request)`."""

    def __init__(self, stub, caller: Caller):
        self.stub, self.metadata = stub, tuple(caller.to_metadata())

    def __getattr__(self, name):
        method = getattr(self.stub, name)

        async def call(request):
            return await method(request, metadata=self.metadata, timeout=30)

        return call


def host() -> Caller:
    return Caller(str(uuid.uuid4()), frozenset({"host"}))


def client() -> Caller:
    return Caller(str(uuid.uuid4()), frozenset({"client"}))


SERVICE = Caller("booking", frozenset({"service"}))
AGENT = Caller(str(uuid.uuid4()), frozenset({"agent"}))


def rid() -> str:
    return str(uuid.uuid4())


def hm(h: int, m: int = 0) -> types_pb2.LocalTime:
    return types_pb2.LocalTime(hours=h, minutes=m)


def dur(**kw) -> object:
    from google.protobuf import duration_pb2

    d = duration_pb2.Duration()
    d.FromTimedelta(timedelta(**kw))
    return d


def ts(value: datetime):
    from google.protobuf import timestamp_pb2

    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def trange(start: datetime, end: datetime) -> types_pb2.TimeRange:
    return types_pb2.TimeRange(start_time=ts(start), end_time=ts(end))


def pdate(d: date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def all_week(start=0, end=24) -> list:
    return [pb.OpeningInterval(weekday=d, start=hm(start), end=hm(end)) for d in range(1, 8)]


def place_message(**overrides) -> pb.Place:
    schedule = overrides.pop("schedule", None) or pb.Schedule(opening_hours=all_week())
    values = dict(
        title="Studio A",
        description="A bright room",
        city=overrides.pop("city", f"City-{uuid.uuid4().hex[:8]}"),
        address="1 Main Street",
        capacity=4,
        unit_count=1,
        price_per_hour=types_pb2.Money(amount_minor=2500, currency_code="EUR"),
        time_zone="Europe/Paris",
        booking_mode=pb.Place.INSTANT,
        schedule=schedule,
    )
    values.update(overrides)
    return pb.Place(**values)


async def create_place(stub, owner: Caller | None = None, **overrides) -> pb.Place:
    return await As(stub, owner or host()).CreatePlace(
        pb.CreatePlaceRequest(request_id=rid(), place=place_message(**overrides))
    )


def future_hour(days: int = 3, hour: int = 10) -> datetime:
    """A whole UTC hour some days ahead (inside an all-week 00-24 Paris schedule)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return base.replace(hour=hour)


def hold_request(place_id: str, *ranges, **kw) -> pb.HoldSlotsRequest:
    return pb.HoldSlotsRequest(
        request_id=kw.pop("request_id", rid()),
        place_id=place_id,
        ranges=[trange(a, b) for a, b in ranges],
        holder_id=kw.pop("holder_id", str(uuid.uuid4())),
        **kw,
    )


def error_info(error: grpc.aio.AioRpcError) -> tuple[str, dict, list]:
    """(reason, metadata, extra details) of a failed call."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            info = error_details_pb2.ErrorInfo()
            status.details[0].Unpack(info)
            return info.reason, dict(info.metadata), list(status.details[1:])
    return "", {}, []
