"""Decoding of serialized reserva.events.v1.EventEnvelope messages into domain events. Anything
that cannot be decoded raises EventRejected with a fixed code: such a message is dead-lettered at
once, because retrying cannot make it valid."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message

from notifications.domain.errors import EventRejected
from notifications.domain.model import IncomingEvent
from notifications.domain.routing import AUDIENCES
from reserva.availability.v1 import events_pb2 as availability_events
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.events.v1 import envelope_pb2
from reserva.payments.v1 import events_pb2 as payment_events

PAYLOAD_TYPES: dict[str, type[Message]] = {
    "booking.requested": booking_events.BookingRequested,
    "booking.approved": booking_events.BookingApproved,
    "booking.rejected": booking_events.BookingRejected,
    "booking.confirmed": booking_events.BookingConfirmed,
    "booking.cancelled": booking_events.BookingCancelled,
    "booking.expired": booking_events.BookingExpired,
    "booking.completed": booking_events.BookingCompleted,
    "booking.no_show": booking_events.BookingNoShow,
    "booking.payment_failed": booking_events.BookingPaymentFailed,
    "booking.fee_unpaid": booking_events.BookingFeeUnpaid,
    "booking.rescheduled": booking_events.BookingRescheduled,
    "waitlist.offered": booking_events.WaitlistOffered,
    "review.created": booking_events.ReviewCreated,
    "review.hidden": booking_events.ReviewHidden,
    "payment.authorized": payment_events.PaymentAuthorized,
    "payment.captured": payment_events.PaymentCaptured,
    "payment.failed": payment_events.PaymentFailed,
    "payment.refunded": payment_events.PaymentRefunded,
    "payment.refund_failed": payment_events.PaymentRefundFailed,
    "payment.voided": payment_events.PaymentVoided,
    "place.created": availability_events.PlaceCreated,
    "place.updated": availability_events.PlaceUpdated,
    "hold.created": availability_events.HoldCreated,
    "hold.confirmed": availability_events.HoldConfirmed,
    "hold.released": availability_events.HoldReleased,
    "hold.expired": availability_events.HoldExpired,
    "calendar.time_blocked": availability_events.TimeBlocked,
    "calendar.time_unblocked": availability_events.TimeUnblocked,
    "calendar.changed": availability_events.CalendarChanged,
}
assert set(PAYLOAD_TYPES) == set(AUDIENCES), "every known event type needs an audience rule"


def parse_envelope(raw: bytes) -> envelope_pb2.EventEnvelope:
    envelope = envelope_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(raw)
    except (DecodeError, RuntimeError) as error:
        raise EventRejected("MALFORMED_ENVELOPE", "the stream entry is not a serialized EventEnvelope") from error
    if not envelope.event_id or not envelope.event_type:
        raise EventRejected("MALFORMED_ENVELOPE", "event_id and event_type are required")
    if not _is_uuid(envelope.event_id):
        raise EventRejected("MALFORMED_ENVELOPE", "event_id is not a UUID")
    return envelope


def envelope_header(raw: bytes) -> tuple[str, str]:
    """(event_id, event_type) of a possibly malformed envelope, for dead letters; empty if unreadable."""
    envelope = envelope_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(raw)
    except (DecodeError, RuntimeError):
        return "", ""
    return envelope.event_id[:100], envelope.event_type[:100]


def trace_context_of(raw: bytes) -> dict[str, str]:
    """The trace context (W3C traceparent) the producer stored in the envelope; empty if unreadable."""
    envelope = envelope_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(raw)
    except (DecodeError, RuntimeError):
        return {}
    return dict(envelope.trace_context)


def aggregate_of(raw: bytes) -> str:
    """The aggregate id of an envelope (events of one aggregate are processed in order)."""
    envelope = envelope_pb2.EventEnvelope()
    envelope.ParseFromString(raw)
    return envelope.aggregate_id


def decode(raw: bytes) -> IncomingEvent:
    envelope = parse_envelope(raw)
    payload_type = PAYLOAD_TYPES.get(envelope.event_type)
    if payload_type is None:
        raise EventRejected("UNKNOWN_EVENT_TYPE", f"no handler for event type {envelope.event_type[:100]!r}")
    payload = payload_type()
    if not envelope.payload.Is(payload.DESCRIPTOR):
        raise EventRejected(
            "MALFORMED_PAYLOAD",
            f"{envelope.event_type} expects {payload.DESCRIPTOR.full_name}, got {envelope.payload.type_url[:200]!r}",
        )
    try:
        envelope.payload.Unpack(payload)
    except (DecodeError, RuntimeError) as error:
        raise EventRejected("MALFORMED_PAYLOAD", f"{envelope.event_type} payload does not parse") from error
    occurred = envelope.occurred_time.ToDatetime(tzinfo=UTC) if envelope.HasField("occurred_time") else None
    facts, participants, start = _facts(payload)
    for role in AUDIENCES[envelope.event_type]:
        if role in ("client", "host") and not _is_uuid(participants.get(role, "")):
            raise EventRejected("MALFORMED_PAYLOAD", f"{envelope.event_type} lacks a valid {role} id")
    if envelope.event_type == "booking.confirmed" and start is None:
        raise EventRejected("MALFORMED_PAYLOAD", "booking.confirmed has no time range")
    return IncomingEvent(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        aggregate_id=envelope.aggregate_id,
        occurred_time=occurred or datetime.now(UTC),
        participants=participants,
        facts=facts,
        booking_start=start,
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _money(message) -> str:
    if not message.currency_code:
        return ""
    return f"{message.amount_minor / 100:.2f} {message.currency_code}"


def _time(ts) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _ranges(ranges) -> tuple[datetime | None, datetime | None]:
    if not ranges:
        return None, None
    return _time(ranges[0].start_time), _time(ranges[-1].end_time)


def _facts(p: Message) -> tuple[dict[str, object], dict[str, str], datetime | None]:
    """Template facts, participants by role, and the booking start (for reminders)."""
    fields = {f.name for f in p.DESCRIPTOR.fields}
    participants = {}
    for role, name in (("client", "client_id"), ("host", "host_id"), ("client", "user_id")):
        if name in fields and getattr(p, name):
            participants.setdefault(role, getattr(p, name))
    facts: dict[str, object] = {
        name: getattr(p, name, "")
        for name in ("booking_id", "place_id", "payment_id", "reason", "failure_reason", "guests", "rating")
    }
    ranges = p.new_ranges if "new_ranges" in fields else p.ranges if "ranges" in fields else ()
    start, end = _ranges(ranges)
    if "range" in fields:
        start, end = _ranges([p.range])
    facts.update(start_time=start, end_time=end)
    if "old_ranges" in fields:
        facts["old_start_time"] = _ranges(p.old_ranges)[0]
    price_field = next((n for n in ("price", "new_price", "amount") if n in fields), None)
    facts["price"] = _money(getattr(p, price_field)) if price_field else ""
    expire_field = next((n for n in ("expire_time", "offer_expire_time") if n in fields), None)
    facts["expire_time"] = _time(getattr(p, expire_field)) if expire_field else None
    if "cancellation" in fields:
        facts["reason"] = p.cancellation.reason
        facts["refund"] = _money(p.cancellation.refund_amount)
        facts["by_host"] = p.cancellation.by_host
    else:
        facts.setdefault("refund", "")
        facts["by_host"] = False
    return facts, participants, start
