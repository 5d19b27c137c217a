"""Proto messages <-> JSON bodies (proto3 JSON mapping, snake_case names, int64 as numbers)."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from kit.errors import InvalidArgument

M = TypeVar("M", bound=Message)


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )


def from_json(data: dict[str, Any], message: M) -> M:
    """Fill `message` from an already validated body; a value the proto cannot hold is a 422."""
    try:
        return json_format.ParseDict(data, message)
    except json_format.ParseError as error:
        raise InvalidArgument(f"invalid value: {str(error)[:300]}", reason="INVALID_ARGUMENT") from None
