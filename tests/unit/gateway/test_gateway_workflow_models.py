"""The response models of the workflow endpoints (gateway/entrypoints/schemas_workflows.py) mirror
their protos: every field of the message documented, required exactly when it has no presence, enums
listing the proto's names; and a message with every field set, or none, goes through its model to the
very same JSON (what `response_model_exclude_unset=True` serves)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel, TypeAdapter

from gateway.entrypoints import schemas_workflows as w
from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.routes.announcements import _announcement
from reserva.booking.v1 import booking_pb2 as bk
from reserva.notifications.v1 import notifications_pb2 as nt

F = FieldDescriptor
MODELS: list[tuple[type[BaseModel], type[Message]]] = [
    (w.SeriesOut, bk.RecurringBookingResult),
    (w.WaitlistEntryOut, bk.WaitlistEntry),
    (w.DeadLetterOut, nt.DeadLetter),
    (w.AnnouncementOut, nt.Announcement),
]
# The announcement audience names roles like the rest of the API (client, host, agent).
GATEWAY_ROLES = {"reserva.notifications.v1.AnnouncementFilter.roles": ["client", "host", "agent"]}
JSON_TYPES = {
    F.TYPE_STRING: "string",
    F.TYPE_BYTES: "string",
    F.TYPE_BOOL: "boolean",
    F.TYPE_INT32: "integer",
    F.TYPE_INT64: "integer",
    F.TYPE_DOUBLE: "number",
}


def _fill(message: Message) -> Message:
    for field in message.DESCRIPTOR.fields:
        if field.type == F.TYPE_MESSAGE:
            target = getattr(message, field.name).add() if field.is_repeated else getattr(message, field.name)
            if field.message_type.full_name == "google.protobuf.Timestamp":
                target.seconds, target.nanos = 1_743_321_600, 123_000_000
            else:
                _fill(target)
            continue
        if field.type == F.TYPE_ENUM:
            value = field.enum_type.values[-1].number
        elif field.type == F.TYPE_BYTES:
            value = b"\x00\xffenvelope"
        else:
            value = {"string": "x", "boolean": True, "integer": 7, "number": 4.5}[JSON_TYPES[field.type]]
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


def _wire(model: type[BaseModel], message: Message) -> dict[str, Any]:
    return _announcement(message) if model is w.AnnouncementOut else to_json(message)


@pytest.mark.parametrize(("model", "proto"), MODELS, ids=[m.__name__ for m, _ in MODELS])
@pytest.mark.parametrize("filled", [True, False], ids=["every-field", "no-field"])
def test_a_message_goes_through_its_model_unchanged(model, proto, filled):
    wire = _wire(model, _fill(proto()) if filled else proto())
    adapter = TypeAdapter(model)
    assert adapter.dump_python(adapter.validate_python(wire), mode="json", exclude_unset=True) == wire


def _check_mirrors(schema: dict[str, Any], defs: dict[str, Any], descriptor: Descriptor) -> None:
    properties = schema["properties"]
    assert set(properties) == {f.name for f in descriptor.fields}, descriptor.full_name
    required = {f.name for f in descriptor.fields if not f.has_presence}
    assert set(schema.get("required", [])) == required, descriptor.full_name
    for field in descriptor.fields:
        prop = properties[field.name]
        if field.is_repeated:
            assert prop["type"] == "array", field.full_name
            prop = prop["items"]
        if field.full_name in GATEWAY_ROLES:
            assert prop["enum"] == GATEWAY_ROLES[field.full_name]
        elif field.type == F.TYPE_ENUM:
            assert prop["enum"] == [v.name for v in field.enum_type.values], field.full_name
        elif field.type == F.TYPE_MESSAGE and field.message_type.full_name == "google.protobuf.Timestamp":
            assert prop["type"] == "string" and prop["format"] == "date-time", field.full_name
        elif field.type == F.TYPE_MESSAGE:
            _check_mirrors(defs[prop["$ref"].rsplit("/", 1)[-1]], defs, field.message_type)
        else:
            assert prop["type"] == JSON_TYPES[field.type], field.full_name


@pytest.mark.parametrize(("model", "proto"), MODELS, ids=[m.__name__ for m, _ in MODELS])
def test_a_model_documents_exactly_the_fields_of_its_message(model, proto):
    schema = model.model_json_schema(mode="serialization")
    _check_mirrors(schema, schema.get("$defs", {}), proto.DESCRIPTOR)


@pytest.mark.parametrize(
    ("enum", "literal"),
    [(bk.WaitlistEntry.State, w.WaitlistStateFilter), (nt.DeadLetter.State, w.DeadLetterStateFilter)],
)
def test_state_filters_take_every_state_but_unspecified(enum, literal):
    assert list(literal.__args__) == [v.name for v in enum.DESCRIPTOR.values][1:]
