"""Crafted page tokens, for the tests that send a service's tokens back edited. Every service's
tokens are unsigned base64 JSON, so a caller can decode one, change it and send it back; such a
token must be INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN, never INTERNAL.

(A module of tests/, importable from every test folder since tests/conftest.py puts tests/ on the
path; a unique name, as test folders share sys.path.)"""

from __future__ import annotations

import base64
import json

import grpc

from kit.grpc_client import error_from_rpc

NOT_A_UUID = "not-a-uuid"
NAIVE = "2030-01-01T10:00:00"  # a time without a UTC offset
# JSON values of shapes no service issues.
HAND_MADE = [[], {}, None, "x", 7, 1.5, True, [1, 2, 3], {"a": 1}, [[[[]]]], ["\u0000", "\ud800"]]


def decoded(token: str):
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def encoded(value, padded: bool = True) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
    return raw if padded else raw.rstrip("=")


def edited(token: str, padded: bool = True, **changes) -> str:
    """The token (a JSON object) with keys replaced, or removed for a value of `...`."""
    value = decoded(token)
    for key, new in changes.items():
        if new is ...:
            value.pop(key)
        else:
            value[key] = new
    return encoded(value, padded)


async def wrong_answers(call, tokens: list[str]) -> list[str]:
    """Each token `call(token)` did not refuse with INVALID_ARGUMENT / INVALID_PAGE_TOKEN, with
    the answer it got instead."""
    wrong = []
    for token in tokens:
        try:
            await call(token)
        except grpc.aio.AioRpcError as error:
            answer = (error.code().name, error_from_rpc(error).reason)
            if answer != ("INVALID_ARGUMENT", "INVALID_PAGE_TOKEN"):
                wrong.append(f"{_shown(token)}: {answer} {error.details()}")
        else:
            wrong.append(f"{_shown(token)}: accepted")
    return wrong


def _shown(token: str) -> str:
    try:
        return repr(decoded(token))
    except ValueError:
        return repr(token)
