"""Opaque page cursors. Each wraps a position (a service's page token, or the gateway's own keyset
value) with the kind of list it belongs to, so a cursor from one list is refused by another."""

from __future__ import annotations

import base64
import json

from kit import page_tokens
from kit.errors import InvalidArgument


def encode_cursor(kind: str, position: str | None) -> str | None:
    if not position:
        return None
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str:
    """The position in a cursor, or "" for the first page. Cursors are not signed: the JSON is read
    back through kit.page_tokens (length, padding, nesting) and the position must be plain text."""
    if not cursor:
        return ""
    data = page_tokens.decode(cursor)
    if not isinstance(data, dict) or data.get("k") != kind or "p" not in data:
        raise InvalidArgument("page_token does not belong to this list", reason="INVALID_PAGE_TOKEN")
    (position,) = page_tokens.fields(data, p=page_tokens.text)
    return position
