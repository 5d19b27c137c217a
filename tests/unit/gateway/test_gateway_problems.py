"""The one error handler's mapping: domain errors -> problem+json with the status from the shared
table, the reason as `code`, Retry-After where it helps, conflicting ranges for a taken slot."""

import json

import pytest
from google.protobuf import any_pb2, timestamp_pb2
from starlette.requests import Request

from gateway.entrypoints.problems import error_response
from kit.errors import (
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    RateLimited,
    ReservaError,
    Unauthenticated,
    Unavailable,
)
from reserva.availability.v1 import availability_pb2
from reserva.type.v1 import types_pb2


def _request(headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/v1/x", "headers": raw, "query_string": b""})


def _body(response) -> dict:
    return json.loads(response.body)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidArgument("bad", reason="INVALID_TIME_RANGE"), 422, "INVALID_TIME_RANGE"),
        (NotFound("no", reason="BOOKING_NOT_FOUND"), 404, "BOOKING_NOT_FOUND"),
        (PermissionDenied("no", reason="NOT_PLACE_OWNER"), 403, "NOT_PLACE_OWNER"),
        (Unauthenticated("who", reason="INVALID_TOKEN"), 401, "INVALID_TOKEN"),
        (FailedPrecondition("no", reason="ILLEGAL_STATUS_TRANSITION"), 409, "ILLEGAL_STATUS_TRANSITION"),
        (Conflict("busy"), 409, "CONCURRENT_MODIFICATION"),
        (PaymentDeclined("card"), 402, "PAYMENT_DECLINED"),
        (IdempotencyKeyReused("again"), 422, "IDEMPOTENCY_KEY_REUSED"),
        (DeadlineExceeded("slow"), 504, "DEADLINE_EXCEEDED"),
    ],
)
def test_each_error_becomes_a_problem_with_the_tables_status_and_its_reason(error, status, code):
    response = error_response(error, _request())
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    body = _body(response)
    assert body["status"] == status and body["code"] == code and body["detail"] == error.message
    assert body["type"].endswith(code.lower().replace("_", "-"))


def test_a_stale_if_match_is_412_not_409():
    response = error_response(Conflict("etag mismatch"), _request({"If-Match": '"v1"'}))
    assert response.status_code == 412
    assert _body(response)["code"] == "CONCURRENT_MODIFICATION"


def test_unavailable_and_rate_limited_say_when_to_retry():
    down = error_response(Unavailable("down", reason="BOOKING_UNAVAILABLE"), _request())
    assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
    limited = error_response(RateLimited("slow down", metadata={"retry_after": "7"}), _request())
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"


def test_a_taken_slot_lists_the_conflicting_ranges():
    start, end = timestamp_pb2.Timestamp(seconds=1_800_000_000), timestamp_pb2.Timestamp(seconds=1_800_003_600)
    conflict = availability_pb2.SlotConflict(conflicting_ranges=[types_pb2.TimeRange(start_time=start, end_time=end)])
    packed = any_pb2.Any()
    packed.Pack(conflict)
    error = FailedPrecondition("taken", reason="SLOT_UNAVAILABLE")
    error.details["proto_details"] = [packed]
    body = _body(error_response(error, _request()))
    assert body["conflicting_ranges"] == [{"start_time": "2027-01-15T08:00:00Z", "end_time": "2027-01-15T09:00:00Z"}]


def test_a_bug_is_a_500_with_a_fixed_message():
    response = error_response(ReservaError("KeyError: secret column", reason="INTERNAL"), _request())
    assert response.status_code == 500
    assert "secret" not in response.body.decode()
