"""Fixtures of the notifications integration tests: a real aiosmtpd server, the service started
in-process on the test database and a fresh Redis namespace per test, and helpers that publish
event envelopes on the streams the way the producers' outbox relays do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2
from waiting import consumed_through, wait_until  # noqa: F401  (the notifications tests import them from here)

from kit.cache import make_redis
from kit.identity import Caller
from notifications.adapters.smtp_sink import start_smtp_sink
from notifications.bootstrap import start
from notifications.config import NotificationsSettings
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.events.v1 import envelope_pb2
from reserva.notifications.v1 import notifications_pb2 as pb
from reserva.notifications.v1 import notifications_pb2_grpc
from reserva.type.v1 import types_pb2

FAST = dict(
    consumer_block_ms=100,
    claim_idle_ms=400,
    claim_interval_s=0.2,
    poll_interval_s=0.05,
    retry_base_s=0.05,
    retry_cap_s=0.2,
    send_max_attempts=3,
    max_event_attempts=3,
    smtp_timeout_s=2.0,
    lock_timeout_ms=300,
)


@pytest.fixture(scope="session")
def smtp_sink():
    sink = start_smtp_sink()
    yield sink
    sink.stop()


@pytest.fixture
def namespace(redis_namespace):
    return f"{redis_namespace}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def redis(infra):
    client = make_redis(infra.redis_url, timeout_s=5)
    yield client
    await client.aclose()


@pytest.fixture
async def notifications_factory(settings_for, smtp_sink, namespace):
    """start_service(**overrides) -> a running service; all are stopped after the test."""
    started = []

    async def start_service(**overrides):
        values = {**FAST, "smtp_port": smtp_sink.port, "redis_namespace": namespace, **overrides}
        settings = settings_for("notifications", NotificationsSettings, **values)
        running = await start(settings)
        started.append(running)
        return running

    yield start_service
    for running in started:
        await running.stop(0)


@pytest.fixture
async def service(notifications_factory):
    return await notifications_factory()


def caller_metadata(user_id: str, *roles: str):
    return Caller(user_id=user_id, roles=frozenset(roles or ("client",))).to_metadata()


@pytest.fixture
async def stub(service):
    async with grpc.aio.insecure_channel(service.address) as channel:
        yield notifications_pb2_grpc.NotificationServiceStub(channel)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def time_range(start: datetime, hours: int = 2) -> types_pb2.TimeRange:
    return types_pb2.TimeRange(start_time=ts(start), end_time=ts(start + timedelta(hours=hours)))


def envelope(event_type: str, payload, aggregate_id: str, event_id: str | None = None) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(payload)
    return envelope_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        source_service=event_type.split(".")[0],
        aggregate_id=aggregate_id,
        sequence=1,
        occurred_time=ts(datetime.now(UTC)),
        payload=packed,
    ).SerializeToString()


def booking_confirmed(client_id: str, host_id: str, start: datetime | None = None, booking_id: str | None = None):
    booking_id = booking_id or str(uuid.uuid4())
    start = start or datetime.now(UTC) + timedelta(days=3)
    return booking_events.BookingConfirmed(
        booking_id=booking_id,
        client_id=client_id,
        host_id=host_id,
        place_id=str(uuid.uuid4()),
        ranges=[time_range(start)],
        price=types_pb2.Money(amount_minor=12550, currency_code="EUR"),
        payment_id=str(uuid.uuid4()),
    )


async def publish(redis, namespace: str, service: str, raw: bytes) -> str:
    message_id = await redis.xadd(f"{namespace}:events:{service}", {"envelope": raw})
    return message_id.decode()


async def set_preferences(stub, user_id: str, paths: list[str], request_id: str | None = None, **fields):
    return await stub.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            request_id=request_id or str(uuid.uuid4()),
            preferences=pb.Preferences(user_id=user_id, **fields),
            update_mask={"paths": paths},
        ),
        metadata=caller_metadata(user_id),
    )


async def history(stub, user_id: str, **kwargs) -> pb.ListNotificationsResponse:
    return await stub.ListNotifications(
        pb.ListNotificationsRequest(user_id=user_id, **kwargs), metadata=caller_metadata(user_id)
    )


async def emails_to(sink, address: str, count: int = 1):
    """Waits until `count` messages reached the address in the SMTP server; returns them."""
    return await wait_until(lambda: (found := sink.to(address)) and len(found) >= count and found)
