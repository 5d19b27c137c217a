"""The Booking aggregate alone: state machine, history, price quote, refund policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from booking.domain.errors import IllegalStatusTransition
from booking.domain.model import (
    Booking,
    BookingMode,
    DepositKind,
    DepositPolicy,
    Money,
    Place,
    RefundPolicy,
    SagaState,
    Status,
    TimeRange,
    normalize_ranges,
    quote_price,
)
from kit.errors import InvalidArgument

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def place(mode=BookingMode.INSTANT, **kw) -> Place:
    return Place(str(uuid.uuid4()), str(uuid.uuid4()), Money(2000, "EUR"), mode, capacity=4, **kw)


def booking(mode=BookingMode.INSTANT, start=NOW + timedelta(days=3), hours=2, **kw) -> Booking:
    return Booking.create(
        client_id=str(uuid.uuid4()),
        place=place(mode, **kw),
        ranges=(TimeRange(start, start + timedelta(hours=hours)),),
        guests=2,
        units=1,
        note="",
        request_id="r",
        fingerprint="f",
        now=NOW,
        request_ttl=timedelta(hours=48),
        hold_ttl=timedelta(minutes=15),
    )


def test_an_instant_booking_starts_held_and_a_request_starts_requested():
    assert booking().status is Status.HELD and booking().saga_state is SagaState.HOLDING
    b = booking(BookingMode.REQUEST)
    assert b.status is Status.REQUESTED and [e.kind for e in b.events] == ["requested"]


def test_request_goes_approved_then_confirmed_and_history_records_who_and_why():
    b = booking(BookingMode.REQUEST)
    b.approve(b.host_id, "hold-1", NOW, timedelta(hours=24))
    b.confirm(NOW, "captured")
    assert b.status is Status.CONFIRMED
    assert [(h.from_status, h.to_status) for h in b.history] == [
        (None, Status.REQUESTED),
        (Status.REQUESTED, Status.APPROVED),
        (Status.APPROVED, Status.CONFIRMED),
    ]
    assert b.history[1].actor_id == b.host_id and b.history[1].reason == "approved by host"
    assert [h.seq for h in b.history] == sorted({h.seq for h in b.history})


def test_an_illegal_transition_names_the_current_status():
    b = booking(BookingMode.REQUEST)
    b.reject(b.host_id, "no", NOW)
    with pytest.raises(IllegalStatusTransition) as caught:
        b.approve(b.host_id, "h", NOW, timedelta(hours=1))
    assert "REJECTED" in caught.value.message and caught.value.reason == "ILLEGAL_STATUS_TRANSITION"


def test_every_change_bumps_the_version():
    b = booking()
    v = b.version
    b.set_saga(SagaState.AUTHORIZING, NOW, timedelta(seconds=30))
    assert b.version == v + 1 and b.due_time == NOW + timedelta(seconds=30)


def test_price_is_per_started_slot_in_integer_minor_units():
    p = place()
    r = TimeRange(NOW, NOW + timedelta(minutes=45))  # two 30-minute slots
    assert quote_price(p, (r,), 1) == Money(2000, "EUR")
    assert quote_price(p, (r, r.shifted(timedelta(hours=2))), 2) == Money(8000, "EUR")


@pytest.mark.parametrize(
    "before_start, by_host, expected",
    [
        (timedelta(days=2), False, 100),
        (timedelta(hours=2), False, 50),
        (-timedelta(hours=1), False, 0),
        (timedelta(hours=2), True, 100),
    ],
)
def test_refund_policy_full_then_partial_then_none(before_start, by_host, expected):
    policy = RefundPolicy(timedelta(hours=24), 50)
    assert policy.refund_percent(NOW, NOW + before_start, by_host) == expected


def test_cancelling_a_confirmed_booking_computes_the_refund():
    b = booking(refund=RefundPolicy(timedelta(days=7), 25))
    b.confirm(NOW, "captured")
    c = b.cancel(b.client_id, False, "plans changed", NOW)
    assert (c.refund_percent, c.refund_minor) == (25, 1000) and b.status is Status.CANCELLED and b.due_time is None


def test_deposit_policy_and_no_show_only_after_start():
    b = booking(deposit=DepositPolicy(DepositKind.PERCENT, 30))
    assert b.deposit == Money(1200, "EUR") and not b.deposit_policy.prepaid
    b.confirm(NOW, "authorized")
    with pytest.raises(IllegalStatusTransition):
        b.mark_no_show(b.host_id, "", NOW)
    b.mark_no_show(b.host_id, "", b.start + timedelta(minutes=5))
    assert b.status is Status.NO_SHOW


def test_ranges_must_not_overlap_and_must_be_forward():
    with pytest.raises(InvalidArgument):
        TimeRange(NOW, NOW)
    r = TimeRange(NOW, NOW + timedelta(hours=2))
    with pytest.raises(InvalidArgument):
        normalize_ranges([r, r.shifted(timedelta(hours=1))])
    assert normalize_ranges([r.shifted(timedelta(hours=2)), r]) == (r, r.shifted(timedelta(hours=2)))
