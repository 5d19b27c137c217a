"""Opaque page tokens: the keyset position of a list, encoded so that clients pass it back as is."""

from __future__ import annotations

import base64
import json

from booking.domain.errors import invalid


def encode_page_token(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_page_token(token: str) -> dict:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, json.JSONDecodeError) as error:
        raise invalid("INVALID_PAGE_TOKEN", "the page token is malformed") from error
