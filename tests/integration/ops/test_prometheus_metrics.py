"""METRICS_EXPORTER=prometheus: each process serves /metrics on its metrics port, with the lock
probe's figures, RPC latency and errors (server and client side), cache lookups, the outbox's lag
and backlog, sweeper batches and saga transitions. Availability, payments, booking and the gateway
run as real processes (`python -m ...entrypoints.server`) on this run's database and Redis; the
calls go through the gateway's HTTP API."""

from __future__ import annotations

import re
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from kit.platform import Platform

DOWN = "127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def processes(infra, database, redis_namespace):
    names = ("availability", "payments", "booking", "gateway")
    ports = {name: free_port() for name in names}
    extra_env = {"GATEWAY_BOOTSTRAP_AGENT_PASSWORD": "", "GATEWAY_NOTIFICATIONS_ADDR": DOWN}
    for name in names:
        prefix = name.upper()
        extra_env |= {
            f"{prefix}_METRICS_EXPORTER": "prometheus",
            f"{prefix}_METRICS_PORT": str(ports[name]),
            f"{prefix}_LOCK_PROBE_STRICT": "true",
        }
    platform = Platform(
        infra.admin_database_url, database, infra.redis_url, redis_namespace, fixed_ports=False, extra_env=extra_env
    )
    try:
        for name in names:  # each after the peers it calls: it is told their addresses
            platform.start_one(name)
        yield platform, ports
    finally:
        platform.stop()


def scrape(port: int) -> str:
    reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` as (labels, value)."""
    found = []
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
            found.append((labels, float(match.group(2))))
    return found


def wait_for(port: int, name: str, timeout_s: float = 20.0, **labels: str) -> list[tuple[dict[str, str], float]]:
    deadline = time.monotonic() + timeout_s
    while True:
        matching = [(lbl, v) for lbl, v in samples(scrape(port), name) if labels.items() <= lbl.items()]
        if matching or time.monotonic() > deadline:
            return matching
        time.sleep(0.2)


def test_metrics_endpoints_show_locks_rpcs_cache_and_the_outbox_after_some_calls(processes):
    platform, ports = processes
    password = "metrics test password"
    email = f"metrics{uuid.uuid4().hex[:12]}@example.com"
    always_open = [
        {"weekday": d, "start": {"hours": 0, "minutes": 0}, "end": {"hours": 24, "minutes": 0}} for d in range(1, 8)
    ]
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=20)
    with httpx.Client(base_url=platform.gateway_url, timeout=30) as http:
        body = {"email": email, "password": password, "name": "Metrics", "roles": ["host", "client"]}
        assert http.post("/v1/auth/register", json=body).status_code == 201
        token = http.post("/v1/auth/token", json={"email": email, "password": password}).json()["access_token"]
        host = {"Authorization": f"Bearer {token}"}
        place = {
            "title": "Measured place",
            "city": f"City{uuid.uuid4().hex[:8]}",
            "address": "Main street 1",
            "capacity": 2,
            "price_per_hour": {"amount_minor": 1000, "currency_code": "EUR"},
            "time_zone": "UTC",
            "booking_mode": "INSTANT",
            "schedule": {"opening_hours": always_open, "slot_granularity": "3600s"},
        }
        created = http.post("/v1/places", json=place, headers=host)
        assert created.status_code == 201, created.text
        for _ in range(2):  # a miss, then a hit of availability's place cache
            assert http.get(f"/v1/places/{created.json()['id']}", headers=host).status_code == 200
        assert http.get(f"/v1/places/{uuid.uuid4()}", headers=host).status_code == 404
        booking = {
            "place_id": created.json()["id"],
            "ranges": [{"start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat()}],
            "guests": 1,
            "payment_method_token": "tok_success",
        }
        booked = http.post("/v1/bookings", json=booking, headers=host)
        assert booked.status_code == 201 and booked.json()["status"] == "CONFIRMED", booked.text

    # Availability: its own endpoint, not the gateway's.
    availability = ports["availability"]
    locks = wait_for(availability, "reserva_db_locks_per_transaction_count", operation="CreatePlace", kind="write")
    assert locks and locks[0][0]["service"] == "availability" and locks[0][1] >= 1
    served = wait_for(availability, "reserva_rpc_duration_milliseconds_count", rpc="CreatePlace", outcome="OK")
    assert served and served[0][1] == 1
    refused = wait_for(availability, "reserva_rpc_errors_total", rpc="GetPlace")
    assert refused and refused[0][0]["outcome"] != "OK" and refused[0][1] >= 1
    assert wait_for(availability, "reserva_cache_lookups_total", outcome="hit")
    # The place's outbox event was published: its commit-to-publish delay, and the backlog gauges.
    assert wait_for(availability, "reserva_outbox_lag_seconds_count", service="availability")
    pending = wait_for(availability, "reserva_outbox_pending", service="availability")
    assert pending, "the backlog gauge is exported (its value may be 0 once the relay caught up)"
    assert wait_for(availability, "reserva_outbox_oldest_unpublished_age_seconds", service="availability")
    assert wait_for(availability, "reserva_sweeper_batch_size_count", sweeper="expired_holds")

    # Booking: the saga's steps, ending done with the booking confirmed; its sweeper's batches.
    transitions = "reserva_booking_saga_transitions_total"
    saga = wait_for(ports["booking"], transitions, to_state="done")
    # Its sweeper also ends sagas other tests of this process left to recovery in the same database
    # (test_booking_saga's "payments down" leaves one compensating): this booking's is among them.
    assert ("confirming", "confirmed") in [(labels["from_state"], labels["status"]) for labels, _ in saga]
    steps = {(labels["from_state"], labels["to_state"]) for labels, _ in samples(scrape(ports["booking"]), transitions)}
    assert {("holding", "authorizing"), ("authorizing", "confirming"), ("confirming", "done")} <= steps
    assert wait_for(ports["booking"], "reserva_sweeper_batch_size_count", sweeper="sweeper")

    # The gateway: its HTTP requests, its calls to availability, its own transactions.
    gateway = ports["gateway"]
    calls = wait_for(gateway, "reserva_rpc_client_duration_milliseconds_count", peer="availability", rpc="CreatePlace")
    assert calls and calls[0][0]["outcome"] == "OK" and calls[0][1] == 1
    assert wait_for(gateway, "reserva_rpc_client_errors_total", peer="availability", rpc="GetPlace")
    assert wait_for(gateway, "reserva_db_locks_per_transaction_count", service="gateway")
    assert any(name.startswith("http_server_") for name in re.findall(r"^(\w+)", scrape(gateway), re.M))
