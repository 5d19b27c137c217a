"""Demo data loaded through the REST API itself (`./reserva up` calls `load_demo_data` after start):
a second agent, two hosts, a client, and places in Europe/Berlin and America/New_York. Safe to run
again: existing users answer 409 and existing places are found by listing the host's places."""

from __future__ import annotations

import os
import uuid

import httpx

from gateway.config import GatewaySettings

PASSWORD = "reserva-demo-password"
USERS = [
    # e-mail, name, roles, time zone, locale
    ("ops.agent@reserva.dev", "Olga Ops", ["agent"], "Europe/Berlin", "en-GB"),
    ("host.berlin@reserva.dev", "Hanna Gastgeber", ["host"], "Europe/Berlin", "de-DE"),
    ("host.newyork@reserva.dev", "Henry Host", ["host"], "America/New_York", "en-US"),
    ("client@reserva.dev", "Clara Client", ["client"], "Europe/Berlin", "en-GB"),
]


def _hours(weekdays, start: int, end: int) -> list[dict]:
    return [
        {"weekday": d, "start": {"hours": start, "minutes": 0}, "end": {"hours": end, "minutes": 0}} for d in weekdays
    ]


def _place(title, city, address, tz, currency, price, mode, capacity, hours) -> dict:
    return {
        "title": title,
        "description": f"{title} in {city}.",
        "city": city,
        "address": address,
        "capacity": capacity,
        "price_per_hour": {"amount_minor": price, "currency_code": currency},
        "time_zone": tz,
        "booking_mode": mode,
        "cancellation_policy": {"full_refund_notice": "86400s", "partial_refund_percent": 50},
        "schedule": {"opening_hours": hours, "slot_granularity": "1800s", "minimum_duration": "3600s"},
    }


PLACES = {
    "host.berlin@reserva.dev": [
        _place("Spree Meeting Room", "Berlin", "Friedrichstrasse 1", "Europe/Berlin", "EUR", 2500, "INSTANT", 8,
               _hours(range(1, 6), 8, 20) + _hours([6], 10, 16)),
        _place("Kreuzberg Photo Studio", "Berlin", "Oranienstrasse 20", "Europe/Berlin", "EUR", 4000, "REQUEST", 4,
               _hours(range(1, 8), 9, 21)),
    ],
    "host.newyork@reserva.dev": [
        _place("Midtown Conference Room", "New York", "5th Avenue 500", "America/New_York", "USD", 6000, "INSTANT",
               12, _hours(range(1, 6), 7, 19)),
        _place("Brooklyn Loft", "New York", "Bedford Ave 100", "America/New_York", "USD", 3500, "REQUEST", 20,
               _hours(range(1, 8), 10, 23)),
    ],
}  # fmt: skip


def _ok(reply: httpx.Response, *allowed: int) -> httpx.Response:
    if reply.status_code not in allowed:
        raise RuntimeError(f"{reply.request.method} {reply.request.url.path}: {reply.status_code} {reply.text[:300]}")
    return reply


def _login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    tokens = _ok(client.post("/v1/auth/token", json={"email": email, "password": password}), 200).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def load_demo_data(gateway_url: str) -> str:
    """Create the demo users and places (idempotent); returns a summary with the credentials."""
    defaults = GatewaySettings()
    agent_email = os.environ.get("GATEWAY_BOOTSTRAP_AGENT_EMAIL", defaults.bootstrap_agent_email)
    agent_password = os.environ.get("GATEWAY_BOOTSTRAP_AGENT_PASSWORD", defaults.bootstrap_agent_password)
    lines = ["Demo data (all passwords: " + PASSWORD + "):", f"  agent   {agent_email} / {agent_password}"]
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        agent = _login(client, agent_email, agent_password)
        for email, name, roles, tz, locale in USERS:
            body = {
                "email": email,
                "password": PASSWORD,
                "name": name,
                "roles": roles,
                "time_zone": tz,
                "locale": locale,
            }
            if "agent" in roles:
                _ok(client.post("/v1/users", json=body, headers=agent), 201, 409)
            else:
                _ok(client.post("/v1/auth/register", json=body), 201, 409)
            lines.append(f"  {roles[0]:<7} {email}")
        for email, places in PLACES.items():
            host = _login(client, email, PASSWORD)
            host_id = _ok(client.get("/v1/users/me", headers=host), 200).json()["id"]
            listed = _ok(client.get("/v1/places", params={"owner_id": host_id, "page_size": 200}, headers=host), 200)
            existing = {p["title"]: p for p in listed.json()["places"]}
            for place in places:
                if place["title"] not in existing:
                    key = {"Idempotency-Key": str(uuid.uuid5(uuid.NAMESPACE_URL, f"reserva-demo:{place['title']}"))}
                    created = _ok(client.post("/v1/places", json=place, headers=host | key), 201).json()
                    existing[place["title"]] = created
                p = existing[place["title"]]
                lines.append(f"  place   {p['title']} ({p['city']}, {p['time_zone']}) id={p['id']}")
    return "\n".join(lines)
