"""kit.page_tokens: what a service reads back from an (unsigned, editable) page token is checked by
shape and type; anything else is INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN and a message
that says what is wrong."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from kit import page_tokens as pt
from kit.errors import InvalidArgument


def token(value, padded: bool = True) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
    return raw if padded else raw.rstrip("=")


def refusal(call) -> str:
    with pytest.raises(InvalidArgument) as refused:
        call()
    assert refused.value.reason == "INVALID_PAGE_TOKEN"
    return refused.value.message


def test_a_token_is_read_padded_or_not():
    assert pt.decode(token({"o": 1})) == {"o": 1}
    assert pt.decode(token(["a", 1], padded=False)) == ["a", 1]


DEEP = base64.urlsafe_b64encode(b"[" * 3000).decode()  # under the length limit, nested too deeply for json


@pytest.mark.parametrize("bad", ["@@", "bm90IGpzb24", "x" * 5000, DEEP])
def test_what_is_not_base64_json_or_is_too_long_or_too_deep_is_refused(bad):
    assert refusal(lambda: pt.decode(bad)).startswith("page_token ")


def test_a_position_is_converted_to_its_kinds():
    t, n, u = pt.position(
        ["2030-01-01T12:00:00+02:00", 4.5, "{12345678-1234-5678-1234-567812345678}"],
        pt.aware_time,
        pt.finite_number,
        pt.uuid_text,
    )
    assert t == datetime(2030, 1, 1, 10, tzinfo=UTC) and t.tzinfo is UTC
    assert n == 4.5 and u == "12345678-1234-5678-1234-567812345678"
    assert pt.fields({"o": 3, "x": "extra"}, o=pt.non_negative_int) == (3,)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (pt.aware_time, "2030-01-01T10:00:00"),  # no UTC offset
        (pt.aware_time, "0001-01-01T00:00:00+14:00"),  # before the year 1 in UTC
        (pt.aware_time, "yesterday"),
        (pt.aware_time, 20300101),
        (pt.uuid_text, "not-a-uuid"),
        (pt.uuid_text, 12),
        (pt.non_negative_int, -1),
        (pt.non_negative_int, True),
        (pt.non_negative_int, 1.0),
        (pt.non_negative_int, "1"),
        (pt.non_negative_int, 2**31),
        (pt.int64, 2**63),
        (pt.finite_number, float("nan")),
        (pt.finite_number, float("inf")),
        (pt.finite_number, 10**400),
        (pt.finite_number, "1"),
        (pt.text, "a\x00b"),
        (pt.text, "\ud800"),
        (pt.text, None),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_its_place(kind, value):
    assert "item 0 of its position is not" in refusal(lambda: pt.position([value], kind))
    assert "its 'k' is not" in refusal(lambda: pt.fields({"k": value}, k=kind))


@pytest.mark.parametrize("data", [None, "x", 7, {"0": "a"}, [], ["a", "b"]])
def test_a_position_of_another_shape_is_refused(data):
    assert "not a list of 1 values" in refusal(lambda: pt.position(data, pt.text))


@pytest.mark.parametrize("data", [None, [], ["o"], "o", {"p": 1}])
def test_an_object_without_the_keys_is_refused(data):
    assert refusal(lambda: pt.fields(data, o=pt.non_negative_int))
