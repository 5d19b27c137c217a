"""The gateway's cursors are unsigned base64 JSON too, so a caller can edit one and send it back. A
cursor nested too deeply for JSON, or whose position is not text the services can take (a NUL
character, a lone surrogate, a number), is a 422 with code INVALID_PAGE_TOKEN, never a 500."""

from __future__ import annotations

import base64
import uuid

import pytest
from gateway_it_support import auth, register
from page_token_support import encoded

pytestmark = pytest.mark.asyncio

TOO_DEEP = base64.urlsafe_b64encode(b"[" * 3000).decode()  # within the length limit


def cursors(kind: str) -> list[str]:
    return [TOO_DEEP, *(encoded({"k": kind, "p": p}, padded=False) for p in ("a\u0000b", "\ud800", 7, None))]


async def test_a_cursor_too_deep_or_with_a_position_that_is_not_plain_text_is_a_422(http, agent):
    user = await register(http)
    lists = [
        ("/v1/users", "users", auth(agent)),
        (f"/v1/places/{uuid.uuid4()}/reviews", "reviews", auth(user)),
        ("/v1/notifications", "notifications", auth(user)),
    ]
    wrong = []
    for path, kind, headers in lists:
        for cursor in cursors(kind):
            reply = await http.get(path, params={"page_token": cursor}, headers=headers)
            answer = (reply.status_code, reply.json().get("code"))
            if answer != (422, "INVALID_PAGE_TOKEN"):
                wrong.append(f"{path} {cursor[:40]}: {reply.status_code} {reply.text[:160]}")
    assert wrong == [], "\n".join(wrong)
