"""Domain events -> outbox messages carrying the booking.v1 event protos."""

from __future__ import annotations

from booking.adapters.proto_mapping import cancellation_to_proto, money, status_to_proto
from booking.adapters.proto_time import range_to_proto, ts
from booking.domain.model import (
    BookingEvent,
    DomainEvent,
    Review,
    ReviewCreated,
    ReviewHidden,
    WaitlistEntry,
    WaitlistOffered,
)
from kit.outbox import OutboxMessage
from reserva.booking.v1 import events_pb2


def to_outbox(event: DomainEvent) -> OutboxMessage:
    if isinstance(event, ReviewCreated):
        return review_created(event.review)
    if isinstance(event, ReviewHidden):
        return review_hidden(event.review)
    if isinstance(event, WaitlistOffered):
        return waitlist_offered(event.entry)
    return _booking_event(event)


def _booking_event(event: BookingEvent) -> OutboxMessage:
    b = event.booking
    common = dict(
        booking_id=b.id,
        client_id=b.client_id,
        host_id=b.host_id,
        place_id=b.place_id,
        ranges=[range_to_proto(r) for r in b.ranges],
    )
    prev = status_to_proto(event.previous_status) if event.previous_status else 0
    kind = event.kind
    if kind == "requested":
        payload = events_pb2.BookingRequested(
            **common, price=money(b.price), guests=b.guests, expire_time=ts(b.expire_time)
        )
    elif kind == "approved":
        payload = events_pb2.BookingApproved(**common, price=money(b.price), expire_time=ts(b.expire_time))
    elif kind == "rejected":
        payload = events_pb2.BookingRejected(**common, reason=event.reason)
    elif kind == "confirmed":
        payload = events_pb2.BookingConfirmed(
            **common,
            price=money(b.price),
            deposit_amount=money(b.deposit),
            payment_id=b.payment_id,
            hold_id=b.hold_id,
            series_id=b.series_id,
        )
    elif kind == "cancelled":
        payload = events_pb2.BookingCancelled(
            **common, price=money(b.price), previous_status=prev, cancellation=cancellation_to_proto(b)
        )
    elif kind == "expired":
        payload = events_pb2.BookingExpired(**common, previous_status=prev)
    elif kind == "completed":
        payload = events_pb2.BookingCompleted(**common, price=money(b.price))
    elif kind == "no_show":
        payload = events_pb2.BookingNoShow(**common)
    elif kind == "payment_failed":
        payload = events_pb2.BookingPaymentFailed(
            **common, amount=money(b.price), payment_id=b.payment_id, failure_reason=b.failure_reason
        )
    elif kind == "fee_unpaid":
        payload = events_pb2.BookingFeeUnpaid(
            **common,
            amount=money(event.amount),
            payment_id=b.payment_id,
            failure_reason=event.reason,
            status=status_to_proto(b.status),
        )
    elif kind == "rescheduled":
        payload = events_pb2.BookingRescheduled(
            booking_id=b.id,
            client_id=b.client_id,
            host_id=b.host_id,
            place_id=b.place_id,
            new_ranges=[range_to_proto(r) for r in b.ranges],
            new_price=money(b.price),
            hold_id=b.hold_id,
        )
    else:
        raise ValueError(f"unknown booking event {kind}")
    return OutboxMessage(f"booking.{kind}", b.id, payload)


def waitlist_offered(entry: WaitlistEntry) -> OutboxMessage:
    payload = events_pb2.WaitlistOffered(
        waitlist_entry_id=entry.id,
        client_id=entry.client_id,
        place_id=entry.place_id,
        range=range_to_proto(entry.range),
        offer_expire_time=ts(entry.offer_expire_time),
    )
    return OutboxMessage("waitlist.offered", entry.id, payload)


def review_created(r: Review) -> OutboxMessage:
    payload = events_pb2.ReviewCreated(
        review_id=r.id,
        booking_id=r.booking_id,
        place_id=r.place_id,
        client_id=r.client_id,
        host_id=r.host_id,
        rating=r.rating,
    )
    return OutboxMessage("review.created", r.id, payload)


def review_hidden(r: Review) -> OutboxMessage:
    payload = events_pb2.ReviewHidden(review_id=r.id, place_id=r.place_id, rating=r.rating, reason=r.hide_reason)
    return OutboxMessage("review.hidden", r.id, payload)
