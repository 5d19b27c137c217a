"""Property-based fuzzing of the served OpenAPI document with schemathesis: every operation gets
generated requests (authenticated as agents, a host, a client and a client-host in turn) and every
answer is checked against the document: no 5xx, a documented status code and content type, and a
body that fits the documented schema (success bodies are typed, see gateway/entrypoints/responses.py).
Every other request of an operation with a resource id in its path gets the id of a seeded resource
(the host's places, the client's bookings, payment and waitlist entry, a block, an announcement), so
success answers are checked too, not only the 404s that random ids get."""

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import hypothesis
import pytest
import schemathesis
from gateway_e2e_support import E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD, PASSWORD, place_body, slot
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.xdist_group("e2e")
MIN_REQUESTS = 500
EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations that would end the fuzzer's own sessions (logout, password or role changes).
SESSION_ENDING = {("POST", "/v1/auth/logout"), ("PATCH", "/v1/users/me")}
# Operations whose success answers must have been seen (and checked against their schema) in every run:
# no required input beyond an id the fuzzer substitutes, and allowed to at least one of its sessions.
MUST_SUCCEED = {
    ("GET", "/healthz"),
    ("GET", "/v1/health"),
    ("GET", "/v1/users/me"),
    ("GET", "/v1/users"),
    ("GET", "/v1/users/{user_id}"),
    ("GET", "/v1/places"),
    ("GET", "/v1/places/{place_id}"),
    ("GET", "/v1/places/{place_id}/reviews"),
    ("POST", "/v1/places/{place_id}/calendar-feed"),
    ("GET", "/v1/bookings"),
    ("GET", "/v1/bookings/{booking_id}"),
    ("GET", "/v1/bookings/{booking_id}/payments"),
    ("GET", "/v1/payments"),
    ("GET", "/v1/payments/{payment_id}"),
    ("GET", "/v1/payments/{payment_id}/ledger"),
    ("GET", "/v1/notifications"),
    ("GET", "/v1/notifications/preferences"),
    ("GET", "/v1/reports/bookings"),
    ("GET", "/v1/reports/revenue"),
    ("GET", "/v1/reports/dashboard"),
    ("GET", "/v1/reports/bookings.csv"),
    ("GET", "/v1/reports/users"),
    ("GET", "/v1/waitlist"),
    ("GET", "/v1/announcements/{announcement_id}"),
    ("GET", "/v1/dead-letters"),
}
# Generated announcements go to the fuzzer's victim only: one to everybody would land in the inboxes of
# every other test's users (and queue ahead of their announcements).
ANNOUNCE = ("POST", "/v1/announcements")


def _login(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    token = http.post("/v1/auth/token", json={"email": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _register(http: httpx.Client, name: str, roles: list[str]) -> tuple[str, dict[str, str]]:
    email = f"fuzz-{name}-{id(http)}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Fuzzer", "roles": roles}
    created = http.post("/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"], _login(http, email, PASSWORD)


def _created(reply: httpx.Response) -> dict:
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def _new_agent(http: httpx.Client, creator: dict[str, str], email: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD, "name": "Fuzzer", "roles": ["agent"]}
    _created(http.post("/v1/users", json=body, headers=creator))
    return _login(http, email, PASSWORD)


def _seed(gateway_url: str) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """The fuzzer's sessions (four agents, a host, a client, a client-host) and ids of resources they can see."""
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        bootstrap_agent = _login(http, E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD)
        _, host = _register(http, "host", ["host"])
        _, client = _register(http, "client", ["client"])
        _, both = _register(http, "both", ["client", "host"])
        # Agents of the fuzzer's own share its agent requests so that none reaches the per-user rate
        # limit however fast the run goes, and leave the bootstrap agent's budget to later tests.
        agent, *more_agents = (
            _new_agent(http, bootstrap_agent, f"fuzz-agent-{n}-{uuid.uuid4().hex[:8]}@example.com") for n in range(4)
        )
        # The agent's generated user updates land on this user, not on the fuzzer's own sessions.
        victim_id, _ = _register(http, "victim", ["client"])
        instant = _created(http.post("/v1/places", json=place_body("INSTANT"), headers=host))
        on_request = _created(http.post("/v1/places", json=place_body("REQUEST"), headers=host))
        block = _created(http.post(f"/v1/places/{instant['id']}/blocks", json={"ranges": [slot()]}, headers=host))
        taken = {instant["id"]: slot(), on_request["id"]: slot()}
        bookings = [
            _created(
                http.post(
                    "/v1/bookings",
                    json={
                        "place_id": place["id"],
                        "ranges": [taken[place["id"]]],
                        "guests": 2,
                        "payment_method_token": "tok_success",
                    },
                    headers=client,
                )
            )
            for place in (instant, on_request)
        ]
        waiting = _created(
            http.post(
                "/v1/waitlist",
                json={"place_id": instant["id"], "range": taken[instant["id"]], "guests": 1},
                headers=client,
            )
        )
        announcement = _created(
            http.post(
                "/v1/announcements",
                json={"subject": "Fuzz", "body": "Seeded", "filter": {"user_ids": [victim_id]}},
                headers=agent,
            )
        )
    known = {
        "place_id": [instant["id"], on_request["id"]],
        "booking_id": [b["id"] for b in bookings],
        "payment_id": [b["payment_id"] for b in bookings if b["payment_id"]],
        "block_id": [block["id"]],
        "user_id": [victim_id],
        "entry_id": [waiting["id"]],
        "announcement_id": [announcement["id"]],
    }
    return [agent, host, more_agents[0], client, more_agents[1], both, more_agents[2]], known


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    succeeded: set = field(default_factory=set)
    last_refusal: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)


def _fuzz(operation, gateway_url: str, sessions: list[dict[str, str]], known: dict[str, list[str]], tally: Tally):
    key = (operation.method.upper(), operation.path)
    counter = itertools.count()

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def exercise(case):
        # Every other request of the operation gets seeded ids; each kind goes to every session in turn.
        n = next(counter)
        if n % 2 == 0:
            for name in case.path_parameters or {}:
                if name in known:
                    case.path_parameters[name] = known[name][n // 2 // len(sessions) % len(known[name])]
        if key == ANNOUNCE and isinstance(case.body, dict):
            case.body["filter"] = {"user_ids": known["user_id"]}
        headers = sessions[n // 2 % len(sessions)]
        response = case.call(base_url=gateway_url, headers=headers, timeout=30)
        tally.sent += 1
        tally.statuses[response.status_code] += 1
        if 200 <= response.status_code < 300:
            tally.succeeded.add(key)
        else:
            tally.last_refusal[key] = f"{response.status_code} {response.text[:200]}"
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as error:  # collect, do not shrink: one line per request
            tally.failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]}\n  {error}"
            )

    exercise()


def test_generated_requests_never_get_a_5xx_or_an_answer_outside_the_schema(gateway_url):
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    sessions, known = _seed(gateway_url)
    assert known["payment_id"], "the instant booking was paid"
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SESSION_ENDING:
            _fuzz(operation, gateway_url, sessions, known, tally)

    statuses = dict(sorted(tally.statuses.items()))
    print(f"schemathesis: {tally.sent} requests, {len(tally.succeeded)} operations answered 2xx; {statuses}")
    assert tally.failures == [], "\n".join(tally.failures[:30])
    assert tally.sent >= MIN_REQUESTS
    missing = {
        f"{method} {path}": tally.last_refusal.get((method, path)) for method, path in MUST_SUCCEED - tally.succeeded
    }
    assert missing == {}, "no success answer was checked for these operations (their last answer shown)"
