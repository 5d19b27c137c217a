"""Opaque page tokens: the keyset position plus a hash of the query they belong to, so a token
replayed with other filters is INVALID_ARGUMENT instead of a silently wrong page."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

from availability.domain.errors import invalid
from kit import page_tokens

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 200


def page_size(value: int, maximum: int = MAX_PAGE_SIZE) -> int:
    if value < 0 or value > maximum:
        raise invalid(
            f"page_size must be between 0 and {maximum} (0 means {DEFAULT_PAGE_SIZE})", "INVALID_PAGE_SIZE", "page_size"
        )
    return value or DEFAULT_PAGE_SIZE


def query_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def encode(query: str, position: list) -> str:
    return base64.urlsafe_b64encode(json.dumps({"q": query, "p": position}, default=str).encode()).decode()


def decode(token: str, query: str, *kinds: Callable[[object], object]) -> tuple | None:
    """The position in a token of this query, each value checked and converted to its kind
    (kit.page_tokens: tokens are not signed, a caller may send one back edited); None without one."""
    if not token:
        return None
    data = page_tokens.decode(token)
    if not isinstance(data, dict) or "q" not in data or "p" not in data:
        raise invalid("page_token is malformed", "INVALID_PAGE_TOKEN", "page_token")
    if data["q"] != query:
        raise invalid("page_token belongs to a query with other parameters", "INVALID_PAGE_TOKEN", "page_token")
    return page_tokens.position(data["p"], *kinds)
