"""One booking, one trace: an INSTANT booking made through the gateway's HTTP API produces a single
trace that holds the gateway's HTTP server span, the booking service's CreateBooking, the
availability and payments calls it makes, their database statements and Redis commands, and later
the notifications service's processing of the booking's events (the outbox carries the context),
each span the child of the one that caused it. The gateway and the four services run in this
process on real sockets with the real PostgreSQL and Redis; an in-memory exporter collects spans."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from availability.bootstrap import start as start_availability
from availability.config import AvailabilitySettings
from booking.bootstrap import start as start_booking
from booking.config import BookingSettings
from gateway.bootstrap import start as start_gateway
from gateway.config import GatewaySettings
from kit.telemetry import setup_telemetry
from notifications.bootstrap import start as start_notifications
from notifications.config import NotificationsSettings
from payments.bootstrap import start as start_payments
from payments.config import PaymentsSettings

DOWN = "127.0.0.1:9"  # nothing listens: e-mail is not sent here
PASSWORD = "trace test password"
SERVICES = {
    "booking": "reserva.booking.v1.BookingService/",
    "availability": "reserva.availability.v1.AvailabilityService/",
    "payments": "reserva.payments.v1.PaymentService/",
}


@pytest.fixture(scope="module")
async def traced(settings_for, redis_namespace):
    """The in-memory exporter is attached before the servers start, so that their engines and Redis
    clients are created with the instrumentation on (kit.telemetry is once per process). A Redis
    namespace of their own: this notifications consumer must not take other tests' events."""
    exporter = InMemorySpanExporter()
    setup_telemetry("trace-test", extra_processor=SimpleSpanProcessor(exporter))

    def settings(service: str, settings_class, **overrides):
        return settings_for(service, settings_class, redis_namespace=namespace, **overrides)

    namespace = f"{redis_namespace}:trace{uuid.uuid4().hex[:6]}"
    availability = await start_availability(settings("availability", AvailabilitySettings, sweeper_enabled=False))
    payments = await start_payments(settings("payments", PaymentsSettings, sandbox_webhooks_enabled=False))
    notifications = await start_notifications(
        settings("notifications", NotificationsSettings, smtp_port=9, consumer_block_ms=100, poll_interval_s=0.5)
    )
    booking = await start_booking(
        settings(
            "booking",
            BookingSettings,
            availability_addr=availability.address,
            payments_addr=payments.address,
            workers_enabled=True,  # the outbox relay publishes its events
            peer_deadline_s=10.0,
        )
    )
    gateway = await start_gateway(
        settings(
            "gateway",
            GatewaySettings,
            http_port=0,
            availability_addr=availability.address,
            booking_addr=booking.address,
            payments_addr=payments.address,
            notifications_addr=notifications.address,
            bootstrap_agent_password="",
            rate_limit_per_user="100000/minute",
            rate_limit_per_ip="100000/minute",
        )
    )
    try:
        yield gateway.url, exporter
    finally:
        await gateway.stop()
        for server in (booking, availability, payments, notifications):
            await server.stop(0)
        # Later tests of this process still make spans; this exporter keeps none of them.
        exporter.clear()
        exporter.shutdown()


async def new_user(http: httpx.AsyncClient, role: str) -> dict[str, str]:
    email = f"trace{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Trace Test", "roles": [role]}
    assert (await http.post("/v1/auth/register", json=body)).status_code == 201
    tokens = await http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


async def instant_place(http: httpx.AsyncClient, host: dict[str, str]) -> str:
    always_open = [
        {"weekday": d, "start": {"hours": 0, "minutes": 0}, "end": {"hours": 24, "minutes": 0}} for d in range(1, 8)
    ]
    body = {
        "title": "Traced place",
        "city": f"City{uuid.uuid4().hex[:8]}",
        "address": "Main street 1",
        "capacity": 4,
        "price_per_hour": {"amount_minor": 1500, "currency_code": "EUR"},
        "time_zone": "UTC",
        "booking_mode": "INSTANT",
        "schedule": {"opening_hours": always_open, "slot_granularity": "3600s"},
    }
    created = await http.post("/v1/places", json=body, headers=host)
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def trace_of_the_request(exporter: InMemorySpanExporter, route: str) -> list[ReadableSpan]:
    """The spans of the trace whose root is the gateway's server span of `POST route`, once the
    root (it ends just after the response is sent) and the consumer's span of the events are in,
    and no span of the trace waits for its parent to end (a later batch of events may still be in
    process: its statements end before its consumer span does). Boundedly waited for."""
    deadline = time.monotonic() + 30
    complete: list[ReadableSpan] | None = None  # a trace with its consumer span, parents or not
    while time.monotonic() < deadline:
        spans = exporter.get_finished_spans()
        roots = [
            s
            for s in spans
            if s.kind is SpanKind.SERVER
            and s.parent is None
            and s.attributes.get("http.route") == route
            and s.attributes.get("http.request.method", s.attributes.get("http.method")) == "POST"
        ]
        assert len(roots) <= 1, [r.name for r in roots]
        if roots:
            trace = [s for s in spans if s.context.trace_id == roots[0].context.trace_id]
            ended = {s.context.span_id for s in trace}
            if any(s.kind is SpanKind.CONSUMER and s.name == "process events:booking" for s in trace):
                complete = trace
                if all(s.parent is None or s.parent.span_id in ended for s in trace):
                    return trace
        await asyncio.sleep(0.05)
    if complete is not None:
        return complete  # a span whose parent never ended: the caller's assertions say which
    raise AssertionError(f"no trace of POST {route} with the events' processing was exported")


def db_system(span: ReadableSpan) -> str | None:
    return span.attributes.get("db.system.name", span.attributes.get("db.system"))


async def test_an_instant_booking_is_one_trace_from_the_gateway_to_every_service_and_its_stores(traced):
    url, exporter = traced
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        host, client = await new_user(http, "host"), await new_user(http, "client")
        place_id = await instant_place(http, host)
        start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=30)
        exporter.clear()
        body = {
            "place_id": place_id,
            "ranges": [{"start_time": start.isoformat(), "end_time": (start + timedelta(hours=2)).isoformat()}],
            "guests": 2,
            "payment_method_token": "tok_success",
        }
        created = await http.post("/v1/bookings", json=body, headers=client)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "CONFIRMED"

    spans = await trace_of_the_request(exporter, "/v1/bookings")
    by_id = {s.context.span_id: s for s in spans}
    root = next(s for s in spans if s.parent is None)

    # One tree: every span but the root has its parent in the same trace.
    assert [s.name for s in spans if s.parent is None] == [root.name]
    assert all(s.parent.span_id in by_id for s in spans if s.parent is not None)

    def ancestors(span: ReadableSpan) -> list[ReadableSpan]:
        chain = []
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            chain.append(span)
        return chain

    def service_of(span: ReadableSpan) -> str:
        """The service whose gRPC server span (or, for notifications, event consumer span) is the
        nearest above (or is) this span; else the gateway."""
        for candidate in [span, *ancestors(span)]:
            if candidate.kind is SpanKind.CONSUMER:
                return "notifications"
            if candidate.kind is SpanKind.SERVER:
                for service, prefix in SERVICES.items():
                    if candidate.name.startswith(prefix):
                        return service
        return "gateway"

    servers = [s for s in spans if s.kind is SpanKind.SERVER and s is not root]
    calls = Counter(s.name for s in servers)
    assert calls["reserva.booking.v1.BookingService/CreateBooking"] == 1
    assert calls["reserva.availability.v1.AvailabilityService/HoldSlots"] == 1
    assert calls["reserva.availability.v1.AvailabilityService/ConfirmHold"] == 1
    assert any(name.startswith(SERVICES["payments"] + "Authorize") for name in calls), calls

    # Each gRPC server span is the child of the client span that made the call, in the caller.
    create = next(s for s in servers if s.name.endswith("/CreateBooking"))
    caller_of_create = by_id[create.parent.span_id]
    assert caller_of_create.kind is SpanKind.CLIENT and caller_of_create.name == "booking/CreateBooking"
    assert service_of(caller_of_create) == "gateway" and root in ancestors(create)
    for server in servers:
        if server is create:
            continue
        client_span = by_id[server.parent.span_id]
        assert client_span.kind is SpanKind.CLIENT, (server.name, client_span.name)
        assert client_span.name.split("/")[-1] == server.name.split("/")[-1]
        assert service_of(client_span) == "booking" and create in ancestors(server)

    # Database statements in every service, each under the RPC that ran it; Redis commands too.
    statements = Counter(service_of(s) for s in spans if db_system(s) == "postgresql")
    assert {"booking", "availability", "payments", "notifications"} <= set(statements), statements
    redis_commands = [s for s in spans if db_system(s) == "redis"]
    assert redis_commands, sorted({s.name for s in spans})
    assert all(s.kind is SpanKind.CLIENT for s in redis_commands)

    # The booking's events, processed by notifications later, continue the trace: each consumer span
    # is the child of the server span whose transaction wrote the event to the outbox.
    consumed = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert "process events:booking" in {s.name for s in consumed}
    for span in consumed:
        producer = span.name.removeprefix("process events:")
        assert by_id[span.parent.span_id].name.startswith(SERVICES[producer]), (span.name, span.parent)


async def test_a_trace_nobody_samples_makes_no_spans_and_its_context_still_reaches_every_service(
    traced, infra, database
):
    """A request whose caller's trace is not sampled: nothing of it is recorded, and although the kit
    makes no span for it (tests/unit/kit/test_unsampled_traces.py), the trace's context travels on
    through the gateway, booking, availability and payments, as the events each of them wrote show."""
    import asyncpg

    from kit.provision import admin_dsn
    from reserva.events.v1 import envelope_pb2

    url, exporter = traced
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        host, client = await new_user(http, "host"), await new_user(http, "client")
        place_id = await instant_place(http, host)
        start = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0) + timedelta(days=31)
        body = {
            "place_id": place_id,
            "ranges": [{"start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat()}],
            "guests": 1,
            "payment_method_token": "tok_success",
        }
        unsampled = {**client, "traceparent": f"00-{trace_id}-{'ab' * 8}-00"}
        created = await http.post("/v1/bookings", json=body, headers=unsampled)
        assert created.status_code == 201, created.text
    booking = created.json()
    assert not [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]

    admin = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        for schema, aggregate in (
            ("booking", booking["id"]),
            ("availability", booking["hold_id"]),
            ("payments", booking["payment_id"]),
        ):
            raws = await admin.fetch(f"SELECT envelope FROM {schema}.outbox WHERE aggregate_id = $1", aggregate)
            assert raws, schema
            for raw in raws:
                parent = envelope_pb2.EventEnvelope.FromString(raw["envelope"]).trace_context["traceparent"]
                assert parent.startswith(f"00-{trace_id}-") and parent.endswith("-00"), (schema, parent)
    finally:
        await admin.close()


async def test_a_calendar_feed_links_secret_never_reaches_a_span(traced):
    """The link's secret is in its query string (calendar apps send nothing else): the gateway's
    server span keeps the URL with the secret's value redacted."""
    url, exporter = traced
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        host = await new_user(http, "host")
        place_id = await instant_place(http, host)
        link = await http.post(f"/v1/places/{place_id}/calendar-feed", headers=host)
        assert link.status_code == 201, link.text
        secret = link.json()["url"].split("token=")[1]
        exporter.clear()
        read = await http.get(f"/v1/places/{place_id}/calendar.ics", params={"token": secret, "x": "1"})
        assert read.status_code == 200, read.text

    deadline = time.monotonic() + 10
    while not (servers := [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER and s.parent is None]):
        assert time.monotonic() < deadline, "the request's server span was not exported"
        await asyncio.sleep(0.05)
    [root] = servers
    urls = [v for k, v in root.attributes.items() if k in ("http.url", "url.full", "url.query")]
    assert urls and all("token=REDACTED" in v and "x=1" in v for v in urls), root.attributes
    everything = [str(v) for s in exporter.get_finished_spans() for v in s.attributes.values()]
    assert not [v for v in everything if secret in v]
