"""Opaque page tokens: the keyset position plus a hash of the query they belong to, so a token
replayed with other filters is INVALID_ARGUMENT instead of a silently wrong page."""

from __future__ import annotations

import base64
import hashlib
import json

from availability.domain.errors import invalid

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


def decode(token: str, query: str) -> list | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        position, token_query = data["p"], data["q"]
    except (ValueError, KeyError, TypeError) as error:
        raise invalid("page_token is malformed", "INVALID_PAGE_TOKEN", "page_token") from error
    if token_query != query:
        raise invalid("page_token belongs to a query with other parameters", "INVALID_PAGE_TOKEN", "page_token")
    return position
