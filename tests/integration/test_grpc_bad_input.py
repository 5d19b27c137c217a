"""Malformed and boundary requests to every RPC of every service: empty messages, huge page sizes,
invalid time zones and currencies, end before start, ranges of ten years, unknown enum values,
garbage ids, oversized strings, page tokens of the wrong shape. Each answer is a precise status
(INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION, ...), never INTERNAL or
UNKNOWN, whoever calls."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import descriptor

from availability.bootstrap import start as start_availability
from availability.config import AvailabilitySettings
from booking.bootstrap import start as start_booking
from booking.config import BookingSettings
from kit.identity import Caller
from notifications.bootstrap import start as start_notifications
from notifications.config import NotificationsSettings
from payments.bootstrap import start as start_payments
from payments.config import PaymentsSettings
from reserva.availability.v1 import availability_pb2, availability_pb2_grpc
from reserva.booking.v1 import booking_pb2, booking_pb2_grpc
from reserva.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from reserva.payments.v1 import payments_pb2, payments_pb2_grpc

pytestmark = pytest.mark.xdist_group("grpc_bad_input")

FD = descriptor.FieldDescriptor
NOW = datetime.now(UTC).replace(microsecond=0)
STRINGS = [
    "",
    " ",
    "x" * 5000,
    "not-a-uuid",
    str(uuid.uuid4()),
    "Mars/Olympus_Mons",
    "XXX",
    "../../etc",
    "\x00",
    "é" * 70,
    "🙂" * 100,
    "a" * 300,
    "9" * 400,
    "\t",
    "-1",
    "'; DROP TABLE x;--",
    "%s%s",
    # Plausible values in the wrong place (a zone database folder, orders, contacts, codes, tokens).
    "Europe",
    "Europe/Paris",
    "UTC",
    " start_time ",
    "create_time desc",
    "price_per_hour desc, rating_average",
    "desc",
    ",",
    "+33612345678",
    "a@b.c",
    "https://example.com/x",
    "http://127.0.0.1:1/x",
    "https://[::1/x",  # unbalanced brackets: urlsplit raises ValueError
    "https://example.com:99999/x",
    "https://169.254.169.254/latest/meta-data/",
    "EUR",
    "eur",
    "XTS",
    "1970-01-01",
    "AAAA",
    "eyJhIjoxfQ",
]


def _token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


# Page tokens are unsigned base64 JSON that callers can decode, edit and send back: properly padded
# tokens whose JSON has the wrong shape, wrong types, times without offset, ids that are no UUID.
PAGE_TOKENS = [
    _token(value)
    for value in (
        {},
        [],
        None,
        "x",
        7,
        [[[[[]]]]],
        {"o": -1},
        {"o": "x"},
        {"t": "2030-01-01T10:00:00", "id": "x"},
        {"t": {}, "id": None},
        {"f": [], "v": "2030-01-01T10:00:00", "id": "not-a-uuid"},
        {"q": "x", "p": ["2030-01-01T10:00:00", "not-a-uuid"]},
        {"s": "x", "p": {"0": 1}},
        ["x", "2030-01-01T10:00:00", "not-a-uuid"],
        ["x", "yesterday", 12],
    )
]
INTS = [0, -1, 1, 5, 24, 100, 101, 200, 201, 1000, 1001, 1440, 10_000, 1 << 30, 2**31 - 1, -(2**31)]
WHEN = [
    NOW - timedelta(days=3650),
    NOW,
    NOW + timedelta(hours=1),
    NOW + timedelta(days=1, minutes=1),
    NOW + timedelta(days=700),
    NOW + timedelta(days=3650),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
]
SECONDS = [-1, 0, 1, 60, 300, 3600, 86400, 86400 * 31 + 1, 86400 * 3650, 315_537_897_599]


def _fill(message, rng: random.Random, depth: int = 0) -> None:
    """Give each field of `message` a hostile or boundary value."""
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.25:
            continue  # leave some fields empty: "required" checks must answer too
        if field.type == FD.TYPE_MESSAGE:
            if field.message_type.full_name == "google.protobuf.Timestamp":
                container = getattr(message, field.name)
                target = container.add() if field.is_repeated else container
                target.FromDatetime(rng.choice(WHEN))
            elif field.message_type.full_name == "google.protobuf.Duration":
                target = getattr(message, field.name)
                if not field.is_repeated:
                    target.FromTimedelta(timedelta(seconds=rng.choice(SECONDS)))
            elif field.message_type.GetOptions().map_entry:
                continue  # maps carry free-form metadata; services store them as given
            elif field.message_type.full_name in ("google.protobuf.Any", "google.protobuf.Struct"):
                continue
            elif depth < 3:
                if field.is_repeated:
                    for _ in range(rng.choice([1, 2])):
                        _fill(getattr(message, field.name).add(), rng, depth + 1)
                else:
                    _fill(getattr(message, field.name), rng, depth + 1)
            continue
        value = _scalar(field, rng)
        if value is None:
            continue
        if field.is_repeated:
            getattr(message, field.name).extend([value, _scalar(field, rng)] if rng.random() < 0.5 else [value])
        else:
            setattr(message, field.name, value)


def _scalar(field, rng: random.Random):
    if field.type == FD.TYPE_STRING:
        if field.name == "page_token" and rng.random() < 0.5:
            return rng.choice(PAGE_TOKENS)
        return rng.choice(STRINGS)
    if field.type == FD.TYPE_BYTES:
        return rng.choice([b"", b"\x00" * 10, b"garbage"])
    if field.type == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == FD.TYPE_ENUM:
        # An unknown enum number is kept by proto3 as an open enum value.
        return rng.choice([0, 1, 2, 999])
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.choice([0.0, -0.0, -1.0, 1.0, 5.0, 5.1, 1e308, float("inf"), float("nan")])
    if field.type in (FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_FIXED32, FD.TYPE_FIXED64):
        return rng.choice([0, 1, 2**31])
    return rng.choice(INTS)


@pytest.fixture(scope="module")
async def servers(settings_for):
    availability = await start_availability(settings_for("availability", AvailabilitySettings))
    payments = await start_payments(settings_for("payments", PaymentsSettings, sandbox_webhooks_enabled=False))
    notifications = await start_notifications(settings_for("notifications", NotificationsSettings))
    booking = await start_booking(
        settings_for(
            "booking",
            BookingSettings,
            availability_addr=availability.address,
            payments_addr=payments.address,
            workers_enabled=False,
        )
    )
    running = {"availability": availability, "payments": payments, "notifications": notifications, "booking": booking}
    yield running
    for server in running.values():
        await server.stop(0)


SERVICES = [
    ("availability", availability_pb2, availability_pb2_grpc.AvailabilityServiceStub, "AvailabilityService"),
    ("booking", booking_pb2, booking_pb2_grpc.BookingServiceStub, "BookingService"),
    ("payments", payments_pb2, payments_pb2_grpc.PaymentServiceStub, "PaymentService"),
    ("notifications", notifications_pb2, notifications_pb2_grpc.NotificationServiceStub, "NotificationService"),
]
CALLERS = [
    Caller(),  # anonymous
    Caller(str(uuid.uuid4()), frozenset({"client"})),
    Caller(str(uuid.uuid4()), frozenset({"host"})),
    Caller(str(uuid.uuid4()), frozenset({"agent"})),
    Caller("booking", frozenset({"service"})),
]
VARIANTS_PER_RPC = 150


@pytest.mark.parametrize(("service", "module", "stub_class", "service_name"), SERVICES, ids=[s[0] for s in SERVICES])
async def test_no_rpc_answers_internal_to_malformed_or_boundary_input(
    servers, service, module, stub_class, service_name
):
    rng = random.Random(f"reserva-{service}")
    problems: list[str] = []
    calls = 0
    async with grpc.aio.insecure_channel(servers[service].address) as channel:
        stub = stub_class(channel)
        for method in module.DESCRIPTOR.services_by_name[service_name].methods:
            request_class = getattr(module, method.input_type.name)
            for variant in range(VARIANTS_PER_RPC):
                request = request_class()
                if variant:  # variant 0 is the empty message
                    _fill(request, rng)
                caller = CALLERS[variant % len(CALLERS)]
                calls += 1
                try:
                    await getattr(stub, method.name)(request, metadata=tuple(caller.to_metadata()), timeout=20)
                except grpc.aio.AioRpcError as error:
                    if error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                        problems.append(f"{method.name} #{variant}: {error.code().name} {error.details()}")
                    elif not error.details():
                        problems.append(f"{method.name} #{variant}: {error.code().name} without a message")
    assert calls >= VARIANTS_PER_RPC * 5
    assert problems == [], "\n".join(problems[:40])
