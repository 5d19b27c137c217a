"""The OpenAPI document types every success answer, and the response models mirror the protos.

Every operation documents a 2xx answer whose body has a real schema (no `{}`, no bare
`dict[str, Any]` object), so schemathesis' response conformance check means something, and every
error status of the shared error table as problem+json. The models
of gateway/entrypoints/responses.py carry the proto3 JSON of `proto_json.to_json` unchanged: a
message with every field set, and one with none set, validates and serializes back to the very same
JSON; the required fields are exactly those without presence; enums list exactly the proto's names."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel, TypeAdapter

from gateway.config import GatewaySettings
from gateway.entrypoints import responses as r
from gateway.entrypoints.app import create_app
from gateway.entrypoints.proto_json import to_json
from kit.error_table import ERROR_TABLE
from reserva.availability.v1 import availability_pb2 as av
from reserva.booking.v1 import booking_pb2 as bk
from reserva.notifications.v1 import notifications_pb2 as nt
from reserva.payments.v1 import payments_pb2 as pay

MODELS: list[tuple[type[BaseModel], type[Message]]] = [
    (r.PlaceOut, av.Place),
    (r.PlaceAvailabilityOut, av.PlaceAvailability),
    (r.FreeSlotOut, av.FreeSlot),
    (r.CalendarEntryOut, av.CalendarEntry),
    (r.BlockOut, av.Block),
    (r.BookingOut, bk.Booking),
    (r.ReviewOut, bk.Review),
    (r.BookingStatsOut, bk.BookingStats),
    (r.PaymentOut, pay.Payment),
    (r.RefundOut, pay.Refund),
    (r.LedgerEntryOut, pay.LedgerEntry),
    (r.RevenueStatsOut, pay.RevenueStats),
    (r.NotificationOut, nt.Notification),
    (r.PreferencesOut, nt.Preferences),
    (r.MarkReadOut, nt.MarkNotificationsReadResponse),
]
# Fields the services never fill in an answer (the model documents and enforces that).
INPUT_ONLY = {"reserva.notifications.v1.Preferences.webhook_secret"}
F = FieldDescriptor
JSON_TYPES = {
    F.TYPE_STRING: "string",
    F.TYPE_BOOL: "boolean",
    F.TYPE_DOUBLE: "number",
    F.TYPE_FLOAT: "number",
    F.TYPE_INT32: "integer",
    F.TYPE_INT64: "integer",
    F.TYPE_UINT32: "integer",
    F.TYPE_UINT64: "integer",
}


def _fill(message: Message) -> Message:
    """Set every field of `message`, nested messages included, to a non-default value."""
    for field in message.DESCRIPTOR.fields:
        if field.full_name in INPUT_ONLY:
            continue
        if field.type == F.TYPE_MESSAGE:
            name = field.message_type.full_name
            target = getattr(message, field.name).add() if field.is_repeated else getattr(message, field.name)
            if name == "google.protobuf.Timestamp":
                target.seconds, target.nanos = 1_743_321_600, 123_000_000
            elif name == "google.protobuf.Duration":
                target.seconds, target.nanos = 5400, 500_000_000
            else:
                _fill(target)
            continue
        if field.type == F.TYPE_ENUM:
            value = field.enum_type.values[-1].number
        else:
            value = {
                "string": "x",
                "boolean": True,
                "number": 4.5,
                "integer": 2**40 if field.type in (F.TYPE_INT64, F.TYPE_UINT64) else 7,
            }[JSON_TYPES[field.type]]
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


@pytest.mark.parametrize(("model", "proto"), MODELS, ids=[m.__name__ for m, _ in MODELS])
@pytest.mark.parametrize("filled", [True, False], ids=["every-field", "no-field"])
def test_a_message_goes_through_its_model_unchanged(model, proto, filled):
    wire = to_json(_fill(proto()) if filled else proto())
    adapter = TypeAdapter(model)
    assert adapter.dump_python(adapter.validate_python(wire), mode="json", exclude_unset=True) == wire


def _check_mirrors(schema: dict[str, Any], defs: dict[str, Any], descriptor: Descriptor, seen: set[str]) -> None:
    if descriptor.full_name in seen:
        return
    seen.add(descriptor.full_name)
    properties = schema["properties"]
    assert set(properties) == {f.name for f in descriptor.fields}, descriptor.full_name
    required = {f.name for f in descriptor.fields if not f.has_presence}
    assert set(schema.get("required", [])) == required, descriptor.full_name
    for field in descriptor.fields:
        prop = properties[field.name]
        if field.is_repeated:
            assert prop["type"] == "array", field.full_name
            prop = prop["items"]
        if field.type == F.TYPE_ENUM:
            assert prop["enum"] == [v.name for v in field.enum_type.values], field.full_name
        elif field.type == F.TYPE_MESSAGE and field.message_type.full_name == "google.protobuf.Timestamp":
            assert prop["type"] == "string" and prop["format"] == "date-time", field.full_name
        elif field.type == F.TYPE_MESSAGE and field.message_type.full_name == "google.protobuf.Duration":
            assert prop["type"] == "string" and prop["pattern"], field.full_name
        elif field.type == F.TYPE_MESSAGE:
            nested = defs[prop["$ref"].rsplit("/", 1)[-1]]
            _check_mirrors(nested, defs, field.message_type, seen)
        else:
            assert prop["type"] == JSON_TYPES[field.type], field.full_name


@pytest.mark.parametrize(("model", "proto"), MODELS, ids=[m.__name__ for m, _ in MODELS])
def test_a_model_documents_exactly_the_fields_of_its_message(model, proto):
    schema = model.model_json_schema(mode="serialization")
    _check_mirrors(schema, schema.get("$defs", {}), proto.DESCRIPTOR, set())


def _untyped(schema: Any, components: dict[str, Any], path: str, seen: set[str]) -> list[str]:
    """Places in `schema` that say nothing: `{}`, or an object with neither properties nor typed values."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _untyped(components[name], components, name, seen | {name})
    if not ({"type", "anyOf", "oneOf", "allOf", "enum", "const"} & set(schema)):
        return [path]
    if schema.get("type") == "object" and not schema.get("properties"):
        extra = schema.get("additionalProperties")
        if not isinstance(extra, dict) or not extra:
            return [path]
    found = []
    for key, value in schema.get("properties", {}).items():
        found += _untyped(value, components, f"{path}.{key}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _untyped(schema[key], components, f"{path}[]", seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += _untyped(option, components, path, seen)
    return found


def test_every_operation_documents_a_typed_success_answer():
    document = create_app(GatewaySettings()).openapi()
    components = document["components"]["schemas"]
    problems, operations = [], 0
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            operations += 1
            name = f"{method.upper()} {path}"
            success = {status: answer for status, answer in operation["responses"].items() if status.startswith("2")}
            if not success:
                problems.append(f"{name}: no 2xx answer documented")
            for status, answer in success.items():
                content = answer.get("content") or {}
                if status == "204":
                    if content:
                        problems.append(f"{name}: 204 with a body")
                    continue
                if not content:
                    problems.append(f"{name}: {status} without a body schema")
                for media_type, body in content.items():
                    if "schema" not in body:
                        problems.append(f"{name}: {status} {media_type} without a schema")
                        continue
                    problems += [
                        f"{name}: {status} {media_type} untyped at {where}"
                        for where in _untyped(body["schema"], components, "body", set())
                    ]
    assert operations >= 50
    assert problems == []


def test_every_operation_documents_every_error_status_of_the_shared_table():
    document = create_app(GatewaySettings()).openapi()
    statuses = {str(status) for _, status in ERROR_TABLE.values() if status != 500}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            missing = statuses - set(operation["responses"])
            assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"
            assert all("problem+json" in ",".join(operation["responses"][s]["content"]) for s in statuses)
