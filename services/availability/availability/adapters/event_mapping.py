"""Domain events -> outbox messages carrying the protos of events.proto."""

from __future__ import annotations

from functools import singledispatch

from google.protobuf import field_mask_pb2

from availability.adapters.proto_mapping import place_to, range_to_proto, ts
from availability.domain import events
from kit.outbox import OutboxMessage
from reserva.availability.v1 import events_pb2 as ev


@singledispatch
def to_outbox(event) -> OutboxMessage:
    if isinstance(event, OutboxMessage):
        return event
    raise TypeError(f"no outbox mapping for {type(event).__name__}")


@to_outbox.register
def _(e: events.PlaceCreated) -> OutboxMessage:
    return OutboxMessage("place.created", e.place.id, ev.PlaceCreated(place=place_to(e.place)))


@to_outbox.register
def _(e: events.PlaceUpdated) -> OutboxMessage:
    mask = field_mask_pb2.FieldMask(paths=e.paths)
    return OutboxMessage("place.updated", e.place.id, ev.PlaceUpdated(place=place_to(e.place), update_mask=mask))


@to_outbox.register
def _(e: events.HoldCreated) -> OutboxMessage:
    h = e.hold
    return OutboxMessage(
        "hold.created",
        h.id,
        ev.HoldCreated(
            hold_id=h.id,
            place_id=h.place_id,
            booking_id=h.booking_id,
            holder_id=h.holder_id,
            ranges=[range_to_proto(r) for r in h.ranges],
            units=h.units,
            expire_time=ts(h.expires_at),
        ),
    )


@to_outbox.register
def _(e: events.HoldConfirmed) -> OutboxMessage:
    h = e.hold
    ranges = [range_to_proto(r) for r in h.ranges]
    payload = ev.HoldConfirmed(hold_id=h.id, place_id=h.place_id, booking_id=h.booking_id, ranges=ranges, units=h.units)
    return OutboxMessage("hold.confirmed", h.id, payload)


@to_outbox.register
def _(e: events.HoldReleased) -> OutboxMessage:
    h = e.hold
    payload = ev.HoldReleased(
        hold_id=h.id,
        place_id=h.place_id,
        booking_id=h.booking_id,
        ranges=[range_to_proto(r) for r in h.ranges],
        units=h.units,
        reason=h.reason,
    )
    return OutboxMessage("hold.released", h.id, payload)


@to_outbox.register
def _(e: events.HoldExpired) -> OutboxMessage:
    h = e.hold
    payload = ev.HoldExpired(
        hold_id=h.id,
        place_id=h.place_id,
        booking_id=h.booking_id,
        ranges=[range_to_proto(r) for r in h.ranges],
        units=h.units,
        expire_time=ts(e.expired_at),
    )
    return OutboxMessage("hold.expired", h.id, payload)


@to_outbox.register
def _(e: events.TimeBlocked) -> OutboxMessage:
    b = e.block
    ranges = [range_to_proto(r) for r in b.ranges]
    payload = ev.TimeBlocked(block_id=b.id, place_id=b.place_id, ranges=ranges, reason=b.reason)
    return OutboxMessage("calendar.time_blocked", b.place_id, payload)


@to_outbox.register
def _(e: events.TimeUnblocked) -> OutboxMessage:
    b = e.block
    payload = ev.TimeUnblocked(block_id=b.id, place_id=b.place_id, ranges=[range_to_proto(r) for r in b.ranges])
    return OutboxMessage("calendar.time_unblocked", b.place_id, payload)


@to_outbox.register
def _(e: events.CalendarChanged) -> OutboxMessage:
    payload = ev.CalendarChanged(
        place_id=e.place_id,
        ranges=[range_to_proto(r) for r in sorted(e.ranges)],
        cause=ev.CalendarChanged.Cause.Value(e.cause),
    )
    return OutboxMessage("calendar.changed", e.place_id, payload)
