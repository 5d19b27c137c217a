"""Real availability, payments and booking gRPC servers, in-process, on the test run's PostgreSQL
and Redis; helpers to call them as a given user. Workers of the shared booking server are off: tests
drive the sweeper with an explicit clock instead of waiting."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from availability.bootstrap import start as start_availability
from availability.config import AvailabilitySettings
from booking.bootstrap import start as start_booking
from booking.config import BookingSettings
from kit.identity import Caller
from payments.bootstrap import start as start_payments
from payments.config import PaymentsSettings
from reserva.availability.v1 import availability_pb2 as apb
from reserva.availability.v1 import availability_pb2_grpc
from reserva.booking.v1 import booking_pb2 as bpb
from reserva.booking.v1 import booking_pb2_grpc
from reserva.type.v1 import types_pb2


@pytest.fixture(scope="session")
async def peer_servers(settings_for):
    availability = await start_availability(settings_for("availability", AvailabilitySettings))
    payments = await start_payments(settings_for("payments", PaymentsSettings, sandbox_webhooks_enabled=False))
    yield availability, payments
    await availability.stop(0)
    await payments.stop(0)


def booking_settings(settings_for, peers, **overrides) -> BookingSettings:
    availability, payments = peers
    values = dict(
        availability_addr=availability.address,
        payments_addr=payments.address,
        workers_enabled=False,
        peer_deadline_s=10.0,
    )
    values.update(overrides)
    return settings_for("booking", BookingSettings, **values)


@pytest.fixture(scope="session")
async def booking_server(settings_for, peer_servers):
    running = await start_booking(booking_settings(settings_for, peer_servers))
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def channels(booking_server, peer_servers):
    availability, _ = peer_servers
    async with (
        grpc.aio.insecure_channel(booking_server.address) as b,
        grpc.aio.insecure_channel(availability.address) as a,
    ):
        yield b, a


@pytest.fixture(scope="session")
def bstub(channels):
    return booking_pb2_grpc.BookingServiceStub(channels[0])


@pytest.fixture(scope="session")
def astub(channels):
    return availability_pb2_grpc.AvailabilityServiceStub(channels[1])


class As:
    """`await As(stub, caller).CreateBooking(request)`: the call made by that user."""

    def __init__(self, stub, caller: Caller):
        self.stub, self.metadata = stub, tuple(caller.to_metadata())

    def __getattr__(self, name):
        method = getattr(self.stub, name)

        async def call(request):
            return await method(request, metadata=self.metadata, timeout=60)

        return call


def user(*roles: str) -> Caller:
    return Caller(str(uuid.uuid4()), frozenset(roles or {"client"}))


AGENT = Caller(str(uuid.uuid4()), frozenset({"agent"}))


def rid() -> str:
    return str(uuid.uuid4())


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def trange(start: datetime, end: datetime) -> types_pb2.TimeRange:
    return types_pb2.TimeRange(start_time=ts(start), end_time=ts(end))


def dur(**kw) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(timedelta(**kw))
    return d


def future_hour(days: int = 5, hour: int = 10) -> datetime:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return base.replace(hour=hour)


async def make_place(astub, host: Caller, mode: str = "instant", **overrides) -> apb.Place:
    values = dict(
        title="Studio",
        city=f"City-{uuid.uuid4().hex[:8]}",
        address="1 Main Street",
        capacity=4,
        unit_count=1,
        price_per_hour=types_pb2.Money(amount_minor=2000, currency_code="EUR"),
        time_zone="UTC",
        booking_mode=apb.Place.INSTANT if mode == "instant" else apb.Place.REQUEST,
        schedule=apb.Schedule(
            opening_hours=[
                apb.OpeningInterval(weekday=d, start=types_pb2.LocalTime(hours=0), end=types_pb2.LocalTime(hours=24))
                for d in range(1, 8)
            ]
        ),
    )
    values.update(overrides)
    return await As(astub, host).CreatePlace(apb.CreatePlaceRequest(request_id=rid(), place=apb.Place(**values)))


def create_request(place_id: str, *ranges, token: str = "tok_success", **kw) -> bpb.CreateBookingRequest:
    return bpb.CreateBookingRequest(
        request_id=kw.pop("request_id", rid()),
        place_id=place_id,
        ranges=[trange(a, b) for a, b in ranges],
        guests=kw.pop("guests", 2),
        payment_method_token=token,
        **kw,
    )


def error_info(error: grpc.aio.AioRpcError) -> tuple[str, dict, list]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            info = error_details_pb2.ErrorInfo()
            status.details[0].Unpack(info)
            return info.reason, dict(info.metadata), list(status.details[1:])
    return "", {}, []


@pytest.fixture(scope="session")
async def admin_sql(infra, database):
    """Run SQL as the platform admin (to inspect any service's tables)."""
    import asyncpg

    from kit.provision import admin_dsn

    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    yield conn
    await conn.close()


@contextmanager
def booking_clock(server, shift: timedelta):
    """The booking server's clock moved by `shift` for the block (a booking that has started or
    ended without waiting for it). Tests run one at a time per process, so nobody else sees it."""
    deps = server.deps
    original = deps.clock
    deps.clock = lambda: original() + shift
    try:
        yield
    finally:
        deps.clock = original


READ_LOCKS, WRITE_RELATION_LOCKS, WRITE_ADVISORY_LOCKS = 10, 16, 1


def assert_lock_budget(readings, *operations: str) -> None:
    """Every booking transaction of these RPCs was measured and stayed within the budget."""
    for operation in operations:
        mine = [r for r in readings if r.service == "booking" and r.operation == operation]
        assert mine, f"no transaction of {operation} was measured"
        for r in mine:
            if r.wrote:
                assert r.relation_locks <= WRITE_RELATION_LOCKS and r.advisory_locks <= WRITE_ADVISORY_LOCKS, r
            else:
                assert r.total_locks <= READ_LOCKS, r


async def fail(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def refused(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    return error.code().name, error_info(error)[0]
