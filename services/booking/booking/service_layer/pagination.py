"""Opaque page tokens: the keyset position of a list, encoded so that clients pass it back as is.
They are not signed, so what comes back is checked by shape and type (kit.page_tokens) before use."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from kit import page_tokens


def encode_page_token(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_page_token(token: str, **kinds: Callable[[object], object]) -> tuple:
    """The values of a token's keys, each of its kind (kit.page_tokens), in the order of `kinds`;
    INVALID_PAGE_TOKEN when the token is not an object with such values."""
    return page_tokens.fields(page_tokens.decode(token), **kinds)
