"""Reading page tokens back. A page token is base64url JSON and not signed: a caller can decode
one, edit it and send it back, or send any JSON value at all. Everything a service reads from a
token therefore goes through here before it reaches a comparison or a statement, checked by shape
and type: an edited token is INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN and a message naming
what is wrong, never an INTERNAL error further down (a KeyError, a time without a UTC offset
compared with aware ones, a text id bound to a uuid column, a negative OFFSET).

Each service keeps its own envelope (so the tokens it already issued stay valid) and describes
its positions with the value kinds below: `position(data, aware_time, uuid_text)` for a list,
`fields(data, t=aware_time, id=uuid_text)` for an object."""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from kit.errors import InvalidArgument

REASON = "INVALID_PAGE_TOKEN"
# Far above any token a service issues (a keyset position of a few values); bounds the work of
# decoding, and with it how deeply nested the JSON can be.
MAX_TOKEN_LENGTH = 4096
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Unfit(ValueError):
    """A value of a token is not of the kind its position needs; the message says which kind."""


def invalid_token(problem: str) -> InvalidArgument:
    return InvalidArgument(f"page_token {problem}", reason=REASON, metadata={"field": "page_token"})


def decode(token: str) -> object:
    """The JSON value a token carries (base64url, padded or not)."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise invalid_token(f"is longer than {MAX_TOKEN_LENGTH} characters")
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, RecursionError):  # not base64, not UTF-8, not JSON, nested too deeply
        raise invalid_token("is not a token this service issued") from None


def position(data: object, *kinds: Callable[[object], object]) -> tuple:
    """`data` as a list of exactly these kinds of value, each checked and converted."""
    if not isinstance(data, list) or len(data) != len(kinds):
        raise invalid_token(f"is malformed: its position is not a list of {len(kinds)} values")
    return tuple(_checked(f"item {i} of its position", kind, data[i]) for i, kind in enumerate(kinds))


def fields(data: object, **kinds: Callable[[object], object]) -> tuple:
    """The values of `data`, a JSON object with (at least) these keys, checked and converted, in
    the order of `kinds`."""
    if not isinstance(data, dict):
        raise invalid_token("is malformed: it is not an object")
    missing = [key for key in kinds if key not in data]
    if missing:
        raise invalid_token(f"is malformed: it has no {missing[0]!r}")
    return tuple(_checked(f"its {key!r}", kind, data[key]) for key, kind in kinds.items())


def _checked(where: str, kind: Callable[[object], object], value: object) -> object:
    try:
        return kind(value)
    except Unfit as error:
        raise invalid_token(f"is malformed: {where} is not {error}") from None


# ----- kinds of value: each returns the value checked (and converted), or raises Unfit ---------
def aware_time(value: object) -> datetime:
    """An ISO 8601 time with a UTC offset, as an aware datetime in UTC."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        if parsed is not None and parsed.utcoffset() is not None:
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # not ISO 8601; or beyond year 1-9999 once in UTC
        pass
    raise Unfit("a time with a UTC offset")


def uuid_text(value: object) -> str:
    """A UUID, in its canonical text form."""
    try:
        if isinstance(value, str):
            return str(uuid.UUID(value))
    except ValueError:
        pass
    raise Unfit("a UUID")


def non_negative_int(value: object) -> int:
    """A whole number from 0 that fits a PostgreSQL integer (an offset, a sequence number)."""
    if type(value) is int and 0 <= value <= INT32_MAX:
        return value
    raise Unfit(f"a whole number from 0 to {INT32_MAX}")


def int32(value: object) -> int:
    if type(value) is int and -INT32_MAX - 1 <= value <= INT32_MAX:
        return value
    raise Unfit("a 32-bit whole number")


def int64(value: object) -> int:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    raise Unfit("a 64-bit whole number")


def finite_number(value: object) -> float:
    if type(value) in (int, float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            pass
        else:
            if math.isfinite(number):  # JSON's NaN and Infinity are no position
                return number
    raise Unfit("a finite number")


def text(value: object) -> str:
    """Text PostgreSQL can take: valid Unicode without NUL characters."""
    if isinstance(value, str) and "\x00" not in value:
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate, which JSON's \\ud800 escapes can carry
            pass
        else:
            return value
    raise Unfit("text without NUL characters")
