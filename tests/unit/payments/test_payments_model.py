"""The Payment aggregate's status machine, balances and ledger, and deposit policies (pure logic)."""

from datetime import UTC, datetime, timedelta

import pytest

from payments.domain.errors import (
    AmountExceedsCapturable,
    AmountExceedsRefundable,
    IllegalPaymentTransition,
    OperationInProgress,
    PaymentOutcomeUnknown,
)
from payments.domain.model import (
    ChargeRecord,
    DepositPolicy,
    LedgerKind,
    Payment,
    PaymentKind,
    PaymentStatus,
    VoidAnswer,
    ledger_totals,
)
from payments.domain.money import Money

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DEPOSIT = PaymentKind.DEPOSIT


def _new(amount=10_000) -> Payment:
    return Payment.create(
        payment_id="p", booking_id="b", user_id="u", kind=PaymentKind.FULL, amount=Money(amount, "EUR"),
        request_id="r", now=NOW,
    )  # fmt: skip


def _entries(p: Payment, log: list):
    log.extend(p.new_entries)
    p.new_entries.clear()
    return log


def _authorized(amount=10_000) -> Payment:
    p = _new(amount)
    p.authorization_succeeded("ch_1", None, NOW)
    return p


def test_the_happy_path_moves_through_every_status_with_matching_ledger():
    p, log = _new(), []
    assert p.status is PaymentStatus.REQUIRES_AUTHORIZATION
    p.authorization_succeeded("ch_1", None, NOW)
    p.reserve_capture(Money(7_000, "EUR"), NOW)
    p.capture_succeeded(NOW)
    assert (p.status, p.captured_amount, p.authorized_amount) == (PaymentStatus.CAPTURED, 7_000, 0)
    refund = p.reserve_refund("rf1", Money(2_000, "EUR"), "", NOW)
    p.refund_succeeded(refund, "re_1", NOW)
    assert p.status is PaymentStatus.PARTIALLY_REFUNDED
    rest = p.reserve_refund("rf2", None, "", NOW)
    p.refund_succeeded(rest, "re_2", NOW)
    assert p.status is PaymentStatus.REFUNDED and p.refunded_amount == 7_000
    _entries(p, log)
    assert [e.kind for e in log] == [
        LedgerKind.AUTHORIZATION, LedgerKind.CAPTURE, LedgerKind.RELEASE, LedgerKind.REFUND, LedgerKind.REFUND,
    ]  # fmt: skip
    assert [e.seq for e in log] == [1, 2, 3, 4, 5]
    assert p.matches_ledger(ledger_totals(log))
    p.check_invariants()
    assert [type(e).__name__ for e in p.events] == [
        "PaymentAuthorized", "PaymentCaptured", "PaymentRefunded", "PaymentRefunded",
    ]  # fmt: skip


def test_a_second_capture_or_void_is_refused_while_one_is_in_flight():
    p = _authorized()
    p.reserve_capture(None, NOW)
    with pytest.raises(OperationInProgress):
        p.reserve_capture(None, NOW)
    with pytest.raises(OperationInProgress):
        p.reserve_void(NOW)


def test_capture_limits_and_illegal_transitions():
    p = _authorized()
    with pytest.raises(AmountExceedsCapturable):
        p.reserve_capture(Money(10_001, "EUR"), NOW)
    with pytest.raises(IllegalPaymentTransition):
        p.reserve_refund("rf", None, "", NOW)
    assert p.reserve_void(NOW) is True
    p.void_succeeded("", NOW)
    assert p.reserve_void(NOW) is False
    with pytest.raises(IllegalPaymentTransition):
        p.reserve_capture(None, NOW)


def test_pending_refunds_count_against_what_is_refundable():
    p = _authorized()
    p.reserve_capture(None, NOW)
    p.capture_succeeded(NOW)
    first = p.reserve_refund("a", Money(6_000, "EUR"), "", NOW)
    with pytest.raises(AmountExceedsRefundable):
        p.reserve_refund("b", Money(4_001, "EUR"), "", NOW)
    p.events.clear()
    p.refund_failed(first, NOW, "refund_declined")
    assert p.refundable_amount == 10_000
    assert [(type(e).__name__, e.refund_id, e.failure_reason) for e in p.events] == [
        ("PaymentRefundFailed", "a", "refund_declined")
    ]


def test_a_declined_authorization_fails_the_payment_without_ledger_entries():
    p = _new()
    p.authorization_declined("card_declined", "ch_x", NOW)
    assert p.status is PaymentStatus.FAILED and p.new_entries == []


def test_an_unknown_payment_is_settled_from_the_processors_record():
    found, lost = _new(), _new()
    for p in (found, lost):
        p.outcome_unknown(NOW)
        assert p.status is PaymentStatus.UNKNOWN
    with pytest.raises(PaymentOutcomeUnknown):
        found.reserve_capture(None, NOW)
    assert found.settle_from_provider(ChargeRecord("ch_1", "authorized", 10_000, "EUR"), NOW)
    assert found.status is PaymentStatus.AUTHORIZED
    assert not found.settle_from_provider(ChargeRecord("ch_1", "authorized", 10_000, "EUR"), NOW)
    assert lost.settle_from_provider(None, NOW)
    assert lost.status is PaymentStatus.FAILED and lost.failure_reason == "provider_no_record"


def test_an_unanswered_capture_is_settled_as_captured_or_kept_to_be_sent_again():
    done, not_received, refused = _authorized(), _authorized(), _authorized()
    for p in (done, not_received, refused):
        p.reserve_capture(Money(4_000, "EUR"), NOW)
        p.outcome_unknown(NOW)
    done.settle_from_provider(ChargeRecord("ch_1", "captured", 10_000, "EUR", captured_minor=4_000), NOW)
    assert done.status is PaymentStatus.CAPTURED and done.captured_amount == 4_000
    assert not done.needs_reconciliation and not done.capture_to_resend(None)
    # The provider never got it: still wanted, and still on the reconciler's list to be sent again.
    charge = ChargeRecord("ch_1", "authorized", 10_000, "EUR")
    assert not not_received.settle_from_provider(charge, NOW)
    assert not_received.capture_to_resend(charge) and not_received.needs_reconciliation
    assert (not_received.status, not_received.pending_amount) == (PaymentStatus.UNKNOWN, 4_000)
    assert refused.settle_from_provider(ChargeRecord("ch_1", "voided", 10_000, "EUR"), NOW)
    assert refused.status is PaymentStatus.AUTHORIZED and refused.pending_operation is None


def test_a_capture_in_flight_is_on_the_reconciler_s_list_and_presumed_unanswered_once_old():
    p = _authorized()
    assert not p.needs_reconciliation
    p.reserve_capture(None, NOW)
    assert p.needs_reconciliation and p.status is PaymentStatus.AUTHORIZED
    assert not p.presume_unanswered(NOW, NOW)  # reserved just now: its call may still be running
    assert p.presume_unanswered(NOW + timedelta(minutes=5), NOW) and p.status is PaymentStatus.UNKNOWN
    assert not p.presume_unanswered(NOW + timedelta(minutes=5), NOW)  # once
    p.capture_succeeded(NOW)
    assert p.status is PaymentStatus.CAPTURED and not p.needs_reconciliation


def test_a_void_of_an_unknown_authorization_is_queued_then_made_after_settlement():
    p = _new()
    p.outcome_unknown(NOW)
    assert not p.void_requested and p.needs_reconciliation
    assert p.request_void("saga_recovery", NOW) is VoidAnswer.QUEUED
    assert p.request_void("other", NOW) is VoidAnswer.QUEUED and p.void_reason == "saga_recovery"
    assert not p.reserve_requested_void(NOW)  # the authorization's outcome first
    assert p.settle_from_provider(ChargeRecord("ch_1", "authorized", 10_000, "EUR"), NOW)
    assert p.status is PaymentStatus.AUTHORIZED and p.needs_reconciliation
    with pytest.raises(IllegalPaymentTransition):
        p.reserve_capture(None, NOW)
    assert p.reserve_requested_void(NOW)
    # The void's request lost (the charge still authorized): the intent stays, the void is sent again.
    assert not p.presume_unanswered(NOW, NOW)
    assert p.presume_unanswered(NOW + timedelta(minutes=5), NOW) and p.status is PaymentStatus.UNKNOWN
    p.settle_from_provider(ChargeRecord("ch_1", "authorized", 10_000, "EUR"), NOW)
    assert p.status is PaymentStatus.AUTHORIZED and p.void_requested and p.reserve_requested_void(NOW)
    p.void_succeeded(p.void_reason, NOW)
    assert p.status is PaymentStatus.VOIDED and not p.needs_reconciliation
    assert p.events[-1].reason == "saga_recovery"
    assert p.request_void("again", NOW) is VoidAnswer.ALREADY_VOIDED


def test_a_void_the_provider_refuses_is_no_longer_requested():
    p = _authorized()
    assert p.request_void("x", NOW) is VoidAnswer.RESERVED and p.needs_reconciliation
    p.operation_rejected(NOW)
    assert p.status is PaymentStatus.AUTHORIZED and not p.void_requested and not p.needs_reconciliation


@pytest.mark.parametrize(
    ("policy", "total", "expected"),
    [
        (DepositPolicy(), 10_000, [(PaymentKind.FULL, 10_000)]),
        (DepositPolicy(percent=30), 10_001, [(PaymentKind.DEPOSIT, 3_001), (PaymentKind.BALANCE, 7_000)]),
        (
            DepositPolicy(fixed=Money(2_500, "EUR")),
            10_000,
            [(PaymentKind.DEPOSIT, 2_500), (PaymentKind.BALANCE, 7_500)],
        ),
        (DepositPolicy(fixed=Money(20_000, "EUR")), 10_000, [(PaymentKind.FULL, 10_000)]),
        (DepositPolicy(percent=100), 10_000, [(PaymentKind.FULL, 10_000)]),
    ],
)
def test_deposit_policies_split_a_price_into_payments(policy, total, expected):
    parts = policy.kinds(Money(total, "EUR"))
    assert [(k, m.amount_minor) for k, m in parts] == expected
    assert sum(m.amount_minor for _, m in parts) == total
