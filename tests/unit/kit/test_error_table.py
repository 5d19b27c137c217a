import grpc
import pytest

from kit.error_table import error_from_status, grpc_status_for, http_status_for
from kit.errors import (
    Conflict,
    FailedPrecondition,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    PaymentDeclined,
    Unavailable,
)


@pytest.mark.parametrize(
    ("error", "code", "http"),
    [
        (InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT, 422),
        (NotFound("none"), grpc.StatusCode.NOT_FOUND, 404),
        (FailedPrecondition("taken", reason="SLOT_UNAVAILABLE"), grpc.StatusCode.FAILED_PRECONDITION, 409),
        (PaymentDeclined("declined"), grpc.StatusCode.FAILED_PRECONDITION, 402),
        (Conflict("busy"), grpc.StatusCode.ABORTED, 409),
        (IdempotencyKeyReused("reused"), grpc.StatusCode.INVALID_ARGUMENT, 422),
        (Unavailable("down"), grpc.StatusCode.UNAVAILABLE, 503),
    ],
)
def test_each_error_kind_has_one_grpc_and_one_http_status(error, code, http):
    assert grpc_status_for(error) is code
    assert http_status_for(error) == http


def test_a_status_with_a_reason_rebuilds_the_same_kind_of_error():
    error = error_from_status(grpc.StatusCode.FAILED_PRECONDITION, "taken", "SLOT_UNAVAILABLE")
    assert isinstance(error, FailedPrecondition)
    assert error.reason == "SLOT_UNAVAILABLE"
    reused = error_from_status(grpc.StatusCode.INVALID_ARGUMENT, "x", "IDEMPOTENCY_KEY_REUSED")
    assert isinstance(reused, IdempotencyKeyReused)
    declined = error_from_status(grpc.StatusCode.FAILED_PRECONDITION, "x", "PAYMENT_DECLINED")
    assert http_status_for(declined) == 402


def test_an_internal_status_never_carries_the_peers_message():
    error = error_from_status(grpc.StatusCode.INTERNAL, "Traceback: secret", None)
    assert "secret" not in error.message
