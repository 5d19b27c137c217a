"""Domain <-> booking.v1 protos."""

from __future__ import annotations

from booking.adapters.proto_time import range_to_proto, ts
from booking.domain.model import Booking, Money, Review, SagaState, Status, WaitlistEntry, WaitState
from reserva.booking.v1 import booking_pb2
from reserva.type.v1 import types_pb2

_STATUS = {
    Status.REQUESTED: 1,
    Status.APPROVED: 2,
    Status.HELD: 3,
    Status.CONFIRMED: 4,
    Status.REJECTED: 5,
    Status.CANCELLED: 6,
    Status.EXPIRED: 7,
    Status.PAYMENT_FAILED: 8,
    Status.COMPLETED: 9,
    Status.NO_SHOW: 10,
}
STATUS_FROM_PROTO = {v: k for k, v in _STATUS.items()}
_SAGA = {
    SagaState.NONE: 0,
    SagaState.HOLDING: 1,
    SagaState.AUTHORIZING: 2,
    SagaState.CONFIRMING: 3,
    SagaState.CAPTURING: 4,
    SagaState.COMPENSATING: 5,
    SagaState.REFUNDING: 6,
    SagaState.DONE: 7,
    SagaState.STUCK: 8,
}
_PAYMENT = {
    "pending": 1,
    "authorized": 2,
    "captured": 3,
    "partially_refunded": 4,
    "refunded": 5,
    "voided": 6,
    "failed": 7,
    "unknown": 8,
}
_WAIT = {WaitState.WAITING: 1, WaitState.OFFERED: 2, WaitState.FULFILLED: 3, WaitState.LEFT: 4, WaitState.EXPIRED: 5}
WAIT_FROM_PROTO = {v: k for k, v in _WAIT.items()}


def status_to_proto(status: Status) -> int:
    return _STATUS[status]


def money(m: Money) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=m.amount_minor, currency_code=m.currency)


def cancellation_to_proto(b: Booking) -> booking_pb2.Cancellation | None:
    c = b.cancellation
    if c is None:
        return None
    return booking_pb2.Cancellation(
        actor_id=c.actor_id,
        by_host=c.by_host,
        reason=c.reason,
        refund_percent=c.refund_percent,
        refund_amount=types_pb2.Money(amount_minor=c.refund_minor, currency_code=b.price.currency),
        refund_id=c.refund_id,
        cancel_time=ts(c.cancel_time),
    )


def booking_to_proto(b: Booking, full: bool = True, payment_status: str | None = None) -> booking_pb2.Booking:
    out = booking_pb2.Booking(
        id=b.id,
        client_id=b.client_id,
        host_id=b.host_id,
        place_id=b.place_id,
        ranges=[range_to_proto(r) for r in b.ranges],
        guests=b.guests,
        units=b.units,
        price=money(b.price),
        deposit_amount=money(b.deposit),
        status=_STATUS[b.status],
        saga_state=_SAGA[b.saga_state],
        hold_id=b.hold_id,
        payment_id=b.payment_id,
        payment_status=_PAYMENT.get(payment_status or b.payment_status, 0),
        series_id=b.series_id,
        create_time=ts(b.created_at),
        update_time=ts(b.updated_at),
        etag=b.etag,
    )
    if b.expire_time is not None and b.status in (Status.REQUESTED, Status.APPROVED, Status.HELD):
        out.expire_time.CopyFrom(ts(b.expire_time))
    cancellation = cancellation_to_proto(b)
    if cancellation is not None:
        out.cancellation.CopyFrom(cancellation)
    if full:
        out.note = b.note
        for h in b.history:
            out.history.add(
                from_status=_STATUS[h.from_status] if h.from_status else 0,
                to_status=_STATUS[h.to_status],
                actor_id=h.actor_id,
                reason=h.reason,
                change_time=ts(h.at),
            )
    return out


def review_to_proto(r: Review) -> booking_pb2.Review:
    out = booking_pb2.Review(
        id=r.id,
        booking_id=r.booking_id,
        place_id=r.place_id,
        client_id=r.client_id,
        host_id=r.host_id,
        rating=r.rating,
        text=r.text,
        hidden=r.hidden,
        hide_reason=r.hide_reason,
        create_time=ts(r.created_at),
        update_time=ts(r.updated_at),
    )
    if r.reply_time is not None:
        out.reply.CopyFrom(
            booking_pb2.ReviewReply(text=r.reply_text, author_id=r.reply_author, reply_time=ts(r.reply_time))
        )
    return out


def waitlist_to_proto(e: WaitlistEntry) -> booking_pb2.WaitlistEntry:
    out = booking_pb2.WaitlistEntry(
        id=e.id,
        place_id=e.place_id,
        client_id=e.client_id,
        range=range_to_proto(e.range),
        guests=e.guests,
        units=e.units,
        state=_WAIT[e.state],
        position=e.position,
        create_time=ts(e.created_at),
        update_time=ts(e.updated_at),
    )
    if e.offer_expire_time is not None:
        out.offer_expire_time.CopyFrom(ts(e.offer_expire_time))
    return out
