"""Property-based fuzzing of the served OpenAPI document with schemathesis: every operation gets
generated requests (authenticated as agents, hosts and clients in turn); no answer may be a 5xx or
fall outside the documented schema."""

import httpx
import hypothesis
import pytest
import schemathesis
from gateway_e2e_support import E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD, PASSWORD
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.xdist_group("e2e")
MIN_REQUESTS = 500
EXAMPLES_PER_OPERATION = 25
# Operations that would end the fuzzer's own sessions (logout, password or role changes).
SESSION_ENDING = {("POST", "/v1/auth/logout"), ("PATCH", "/v1/users/me")}


def _sessions(gateway_url: str) -> list[dict[str, str]]:
    headers = []
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        credentials = [(E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD)]
        for roles in (["host"], ["client"], ["client", "host"]):
            email = f"fuzz-{roles[-1]}-{len(credentials)}-{id(credentials)}@example.com"
            body = {"email": email, "password": PASSWORD, "name": "Fuzzer", "roles": roles}
            assert http.post("/v1/auth/register", json=body).status_code == 201
            credentials.append((email, PASSWORD))
        for email, password in credentials * 2:
            token = http.post("/v1/auth/token", json={"email": email, "password": password}).json()
            headers.append({"Authorization": f"Bearer {token['access_token']}"})
    return headers


def test_generated_requests_never_get_a_5xx_or_an_answer_outside_the_schema(gateway_url):
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    sessions = _sessions(gateway_url)
    sent, failures = [0], []

    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SESSION_ENDING:
            continue

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def exercise(case):
            headers = sessions[sent[0] % len(sessions)]
            response = case.call(base_url=gateway_url, headers=headers, timeout=30)
            sent[0] += 1
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance], headers=headers
                )
            except (AssertionError, BaseExceptionGroup):  # collect, do not shrink: one line per request
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:200]}")

        exercise()

    assert sent[0] >= MIN_REQUESTS
    assert failures == [], "\n".join(failures[:30])
