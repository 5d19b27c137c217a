"""Opaque page cursors. Each wraps a position (a service's page token, or the gateway's own keyset
value) with the kind of list it belongs to, so a cursor from one list is refused by another."""

from __future__ import annotations

import base64
import binascii
import json

from kit.errors import InvalidArgument

MAX_CURSOR_LENGTH = 4096


def encode_cursor(kind: str, position: str | None) -> str | None:
    if not position:
        return None
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str:
    """The position in a cursor, or "" for the first page."""
    if not cursor:
        return ""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidArgument("page_token is too long", reason="INVALID_PAGE_TOKEN")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token is not a valid cursor", reason="INVALID_PAGE_TOKEN") from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("p"), str):
        raise InvalidArgument("page_token does not belong to this list", reason="INVALID_PAGE_TOKEN")
    return data["p"]
