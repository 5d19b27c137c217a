"""The Payment aggregate, its refunds and its append-only ledger.

Status machine:
    REQUIRES_AUTHORIZATION -> AUTHORIZED | FAILED | UNKNOWN
    UNKNOWN (authorization) -> AUTHORIZED | FAILED            (webhook or reconciliation)
    AUTHORIZED -> CAPTURED | VOIDED | UNKNOWN (capture/void unanswered)
    UNKNOWN (capture/void)  -> CAPTURED | VOIDED | AUTHORIZED (a capture the provider never
                               received is sent again, not dropped)
    CAPTURED | PARTIALLY_REFUNDED -> PARTIALLY_REFUNDED | REFUNDED

A void is an intent that is never lost: `request_void` records it (void_requested) and, while the
authorization's outcome is unknown, only records it; the reconciler settles the authorization, then
voids. A requested void blocks captures. A refund whose provider call went unanswered stays PENDING
(its amount reserved) until the reconciler learns the provider's answer.

Invariant, checked after every change and by a database check constraint:
    0 <= refunded <= captured <= authorized total <= amount
Every money movement appends a LedgerEntry; the balances on the payment equal the ledger's sums.
Provider calls happen between a `reserve_*` step and a `*_succeeded` step, each in its own short
transaction; `pending_operation` and `refund_pending_amount` keep concurrent callers out meanwhile.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from payments.domain import events
from payments.domain.errors import (
    AmountExceedsCapturable,
    AmountExceedsRefundable,
    IllegalPaymentTransition,
    InvalidAmount,
    OperationInProgress,
    PaymentOutcomeUnknown,
)
from payments.domain.money import Money


class PaymentStatus(enum.StrEnum):
    REQUIRES_AUTHORIZATION = "requires_authorization"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    FAILED = "failed"
    UNKNOWN = "unknown"


class PaymentKind(enum.StrEnum):
    FULL = "full"
    DEPOSIT = "deposit"
    BALANCE = "balance"


class PendingOperation(enum.StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"


class LedgerKind(enum.StrEnum):
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"
    RELEASE = "release"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class VoidAnswer(enum.StrEnum):
    ALREADY_VOIDED = "already_voided"  # nothing to do
    QUEUED = "queued"  # recorded; the reconciler voids once the authorization's outcome is known
    RESERVED = "reserved"  # ask the provider now


UNSETTLED = {PaymentStatus.REQUIRES_AUTHORIZATION, PaymentStatus.UNKNOWN}
REFUNDABLE = {PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED}


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    payment_id: str
    seq: int
    kind: LedgerKind
    amount: Money
    booking_id: str
    refund_id: str | None
    create_time: datetime


@dataclass
class Refund:
    id: str
    payment_id: str
    amount: Money
    reason: str
    status: RefundStatus
    create_time: datetime
    provider_reference: str = ""


@dataclass(frozen=True)
class LedgerTotals:
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    voided: int = 0
    released: int = 0

    @property
    def outstanding_authorization(self) -> int:
        return self.authorized - self.captured - self.voided - self.released


def ledger_totals(entries: list[LedgerEntry]) -> LedgerTotals:
    sums = {kind: 0 for kind in LedgerKind}
    for entry in entries:
        sums[entry.kind] += entry.amount.amount_minor
    return LedgerTotals(
        authorized=sums[LedgerKind.AUTHORIZATION],
        captured=sums[LedgerKind.CAPTURE],
        refunded=sums[LedgerKind.REFUND],
        voided=sums[LedgerKind.VOID],
        released=sums[LedgerKind.RELEASE],
    )


@dataclass
class Payment:
    id: str
    booking_id: str
    user_id: str
    kind: PaymentKind
    amount: Money
    request_id: str
    create_time: datetime
    update_time: datetime
    status: PaymentStatus = PaymentStatus.REQUIRES_AUTHORIZATION
    # Outstanding authorization: reserved, not yet captured, voided or released.
    authorized_amount: int = 0
    captured_amount: int = 0
    refunded_amount: int = 0
    # Refunds sent to the provider and not yet settled; they count against what is refundable.
    refund_pending_amount: int = 0
    pending_operation: PendingOperation | None = PendingOperation.AUTHORIZE
    pending_amount: int = 0
    failure_reason: str = ""
    provider_reference: str = ""
    authorization_expire_time: datetime | None = None
    # Number of ledger entries: the next entry gets ledger_seq + 1 (unique per payment in the table).
    ledger_seq: int = 0
    version: int = 0
    # A void was asked for and is not done yet (see request_void); kept as history once VOIDED.
    void_requested: bool = False
    void_reason: str = ""
    new_entries: list[LedgerEntry] = field(default_factory=list, repr=False, compare=False)
    events: list[events.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    # ---- creation and authorization -------------------------------------------------------------

    @classmethod
    def create(
        cls, *, payment_id: str, booking_id: str, user_id: str, kind: PaymentKind, amount: Money,
        request_id: str, now: datetime,
    ) -> Payment:  # fmt: skip
        if amount.amount_minor <= 0:
            raise InvalidAmount("amount.amount_minor must be positive")
        return cls(
            id=payment_id, booking_id=booking_id, user_id=user_id, kind=kind, amount=amount,
            request_id=request_id, create_time=now, update_time=now,
        )  # fmt: skip

    @property
    def currency(self) -> str:
        return self.amount.currency

    def money(self, amount_minor: int) -> Money:
        return Money(amount_minor, self.currency)

    @property
    def is_settled(self) -> bool:
        return self.status not in UNSETTLED

    @property
    def needs_reconciliation(self) -> bool:
        """On the reconciler's work list: the authorization not answered yet, an operation whose
        answer was lost, a capture in flight (its recording may never happen if the process or its
        database session dies), or a requested void not carried out yet."""
        return (
            self.status in UNSETTLED
            or self.pending_operation is PendingOperation.CAPTURE
            or (self.void_requested and self.status is PaymentStatus.AUTHORIZED)
        )

    def authorization_succeeded(self, provider_reference: str, expire_time: datetime | None, now: datetime) -> None:
        self._expect_pending(PendingOperation.AUTHORIZE)
        self.status = PaymentStatus.AUTHORIZED
        self.authorized_amount = self.amount.amount_minor
        self.provider_reference = provider_reference
        self.authorization_expire_time = expire_time
        self._clear_pending(now)
        self._append(LedgerKind.AUTHORIZATION, self.amount.amount_minor, now)
        self.events.append(events.PaymentAuthorized(self.id, self.booking_id, self.user_id, self.kind, self.amount))

    def authorization_declined(self, failure_reason: str, provider_reference: str, now: datetime) -> None:
        self._expect_pending(PendingOperation.AUTHORIZE)
        self.status = PaymentStatus.FAILED
        self.failure_reason = failure_reason
        self.provider_reference = provider_reference
        self._clear_pending(now)
        self.events.append(events.PaymentFailed(self.id, self.booking_id, self.user_id, self.amount, failure_reason))

    def outcome_unknown(self, now: datetime) -> None:
        """The provider did not answer: keep the pending operation, settle it later."""
        if self.pending_operation is None:
            raise IllegalPaymentTransition("no provider operation is pending on this payment")
        self.status = PaymentStatus.UNKNOWN
        self._touch(now)

    # ---- capture and void ------------------------------------------------------------------------

    def reserve_capture(self, amount: Money | None, now: datetime) -> Money:
        """Claim the capture: only one capture or void of a payment is ever in flight."""
        self._expect_idle_with(PaymentStatus.AUTHORIZED, "capture")
        if self.void_requested:
            raise IllegalPaymentTransition(
                f"cannot capture payment {self.id}: a void was requested ({self.void_reason or 'no reason'})",
                metadata={"status": self.status.value},
            )
        amount = amount or self.money(self.authorized_amount)
        self._same_currency(amount)
        if amount.amount_minor > self.authorized_amount:
            raise AmountExceedsCapturable(
                f"cannot capture {amount}: only {self.money(self.authorized_amount)} is authorized",
                metadata={"capturable_minor": str(self.authorized_amount)},
            )
        self.pending_operation, self.pending_amount = PendingOperation.CAPTURE, amount.amount_minor
        self._touch(now)
        return amount

    def capture_succeeded(self, now: datetime) -> None:
        self._expect_pending(PendingOperation.CAPTURE)
        captured = self.pending_amount
        released = self.authorized_amount - captured
        self.captured_amount += captured
        self.authorized_amount = 0
        self.status = PaymentStatus.CAPTURED
        self.authorization_expire_time = None
        self._clear_pending(now)
        self._append(LedgerKind.CAPTURE, captured, now)
        if released:
            self._append(LedgerKind.RELEASE, released, now)
        self.events.append(
            events.PaymentCaptured(
                self.id, self.booking_id, self.user_id, self.kind, self.money(captured), self.money(released)
            )
        )

    def reserve_void(self, now: datetime) -> bool:
        """Claim the void; False if the payment is already VOIDED (voiding again changes nothing)."""
        if self.status is PaymentStatus.VOIDED:
            return False
        self._expect_idle_with(PaymentStatus.AUTHORIZED, "void")
        self.pending_operation, self.pending_amount = PendingOperation.VOID, self.authorized_amount
        self._touch(now)
        return True

    def request_void(self, reason: str, now: datetime) -> VoidAnswer:
        """Void an AUTHORIZED payment now (RESERVED: ask the provider), or, while the authorization's
        outcome is unknown (REQUIRES_AUTHORIZATION, UNKNOWN) or a void's answer was lost, record the
        intent (QUEUED): the reconciler settles the authorization first, then voids it."""
        if self.status is PaymentStatus.VOIDED:
            return VoidAnswer.ALREADY_VOIDED
        outcome_unknown = (self.pending_operation is PendingOperation.AUTHORIZE and self.status in UNSETTLED) or (
            self.pending_operation is PendingOperation.VOID and self.status is PaymentStatus.UNKNOWN
        )
        if outcome_unknown:
            if not self.void_requested:
                self.void_requested, self.void_reason = True, reason
                self._touch(now)
            return VoidAnswer.QUEUED
        self.reserve_void(now)
        self.void_requested, self.void_reason = True, reason
        return VoidAnswer.RESERVED

    def reserve_requested_void(self, now: datetime) -> bool:
        """The reconciler's step once the authorization stands: reserve the requested void."""
        if self.void_requested and self.status is PaymentStatus.AUTHORIZED and self.pending_operation is None:
            self.reserve_void(now)
            return True
        return False

    def presume_unanswered(self, reserved_before: datetime, now: datetime) -> bool:
        """A capture or void reserved before `reserved_before` (far longer ago than any provider
        call may take) and never answered: the process calling the provider died, or the
        transaction recording its answer was cut. Its outcome is unknown."""
        if (
            self.pending_operation in (PendingOperation.CAPTURE, PendingOperation.VOID)
            and self.status is PaymentStatus.AUTHORIZED
            and self.update_time < reserved_before
        ):
            self.outcome_unknown(now)
            return True
        return False

    @property
    def is_captured(self) -> bool:
        return self.captured_amount > 0

    def capture_to_resend(self, charge: ChargeRecord | None) -> bool:
        """An unanswered capture the provider never received (its charge still only authorized):
        it is sent again under the same idempotency key, so it happens at most once."""
        return (
            self.pending_operation is PendingOperation.CAPTURE
            and self.status is PaymentStatus.UNKNOWN
            and charge is not None
            and charge.status == "authorized"
        )

    def void_succeeded(self, reason: str, now: datetime) -> None:
        self._expect_pending(PendingOperation.VOID)
        voided = self.authorized_amount
        self.authorized_amount = 0
        self.status = PaymentStatus.VOIDED
        self.authorization_expire_time = None
        self._clear_pending(now)
        self._append(LedgerKind.VOID, voided, now)
        self.events.append(events.PaymentVoided(self.id, self.booking_id, self.user_id, self.money(voided), reason))

    def operation_rejected(self, now: datetime, *, void_still_wanted: bool = False) -> None:
        """The provider refused a capture or void (or, `void_still_wanted`, never received the void):
        the authorization stands as it was. A refused void is no longer requested."""
        if self.pending_operation in (PendingOperation.CAPTURE, PendingOperation.VOID):
            if self.pending_operation is PendingOperation.VOID and not void_still_wanted:
                self.void_requested = False
            self.status = PaymentStatus.AUTHORIZED
            self._clear_pending(now)

    # ---- refunds ---------------------------------------------------------------------------------

    @property
    def refundable_amount(self) -> int:
        return self.captured_amount - self.refunded_amount - self.refund_pending_amount

    def reserve_refund(self, refund_id: str, amount: Money | None, reason: str, now: datetime) -> Refund:
        """Set aside the refund's amount before the provider is asked, so concurrent refunds can
        never together exceed what was captured."""
        if self.status not in REFUNDABLE:
            raise IllegalPaymentTransition(
                f"cannot refund a payment that is {self.status.value}; it must be captured",
                metadata={"status": self.status.value},
            )
        amount = amount or self.money(self.refundable_amount)
        self._same_currency(amount)
        if amount.amount_minor <= 0 or amount.amount_minor > self.refundable_amount:
            raise AmountExceedsRefundable(
                f"cannot refund {amount}: {self.money(self.refundable_amount)} remains refundable",
                metadata={"refundable_minor": str(self.refundable_amount)},
            )
        self.refund_pending_amount += amount.amount_minor
        self._touch(now)
        return Refund(refund_id, self.id, amount, reason, RefundStatus.PENDING, now)

    def refund_succeeded(self, refund: Refund, provider_reference: str, now: datetime) -> None:
        if refund.status is not RefundStatus.PENDING:
            raise IllegalPaymentTransition(f"refund {refund.id} is already {refund.status.value}")
        amount = refund.amount.amount_minor
        self.refund_pending_amount -= amount
        self.refunded_amount += amount
        refund.status, refund.provider_reference = RefundStatus.SUCCEEDED, provider_reference
        fully = self.refunded_amount == self.captured_amount
        self.status = PaymentStatus.REFUNDED if fully else PaymentStatus.PARTIALLY_REFUNDED
        self._append(LedgerKind.REFUND, amount, now, refund_id=refund.id)
        self.events.append(
            events.PaymentRefunded(
                self.id, self.booking_id, self.user_id, refund.id, refund.amount,
                self.money(self.refunded_amount), fully, refund.reason,
            )
        )  # fmt: skip

    def refund_failed(self, refund: Refund, now: datetime, failure_reason: str = "") -> None:
        if refund.status is RefundStatus.PENDING:
            self.refund_pending_amount -= refund.amount.amount_minor
            refund.status = RefundStatus.FAILED
            self._touch(now)
            self.events.append(
                events.PaymentRefundFailed(
                    self.id, self.booking_id, self.user_id, refund.id, refund.amount, failure_reason
                )
            )

    # ---- settlement from the provider's record (webhook, reconciliation) -------------------------

    def settle_from_provider(self, charge: ChargeRecord | None, now: datetime) -> bool:
        """Bring an UNKNOWN (or stuck) payment in line with what the provider says happened.
        Returns True if something changed. `charge` None: the provider never saw the request."""
        pending = self.pending_operation
        if pending is None or (pending is PendingOperation.AUTHORIZE and self.status not in UNSETTLED):
            return False
        if pending is PendingOperation.AUTHORIZE:
            if charge is None:
                self.authorization_declined("provider_no_record", "", now)
            elif charge.status == "failed":
                self.authorization_declined(charge.failure_code or "provider_error", charge.reference, now)
            else:
                self.authorization_succeeded(charge.reference, charge.authorization_expire_time, now)
                if charge.status == "captured":  # recorded as it happened, even if a void was requested since
                    self.pending_operation, self.pending_amount = PendingOperation.CAPTURE, charge.captured_minor
                    self.capture_succeeded(now)
            return True
        if self.status is not PaymentStatus.UNKNOWN:
            return False  # a capture/void still in flight, not (yet) unanswered
        if pending is PendingOperation.CAPTURE and charge is not None and charge.status in ("captured", "refunded"):
            self.pending_amount = charge.captured_minor
            self.capture_succeeded(now)
        elif self.capture_to_resend(charge):
            return False  # still wanted: the reconciler sends it again (see capture_to_resend)
        elif pending is PendingOperation.VOID and charge is not None and charge.status == "voided":
            self.void_succeeded(self.void_reason, now)
        else:
            # A void the provider never received (the charge is still authorized) is sent again.
            lost_void = pending is PendingOperation.VOID and charge is not None and charge.status == "authorized"
            self.operation_rejected(now, void_still_wanted=lost_void)
        return True

    # ---- invariants and helpers ------------------------------------------------------------------

    def check_invariants(self) -> None:
        """refunded <= captured <= authorized total <= amount; a bug if it ever fails."""
        total_authorized = self.authorized_amount + self.captured_amount
        ok = (
            0 <= self.refunded_amount + self.refund_pending_amount <= self.captured_amount
            and self.authorized_amount >= 0
            and total_authorized <= self.amount.amount_minor
        )
        if not ok:
            raise AssertionError(f"payment {self.id} breaks its balance invariants: {self!r}")

    def matches_ledger(self, totals: LedgerTotals) -> bool:
        return (
            totals.outstanding_authorization == self.authorized_amount
            and totals.captured == self.captured_amount
            and totals.refunded == self.refunded_amount
        )

    def _append(self, kind: LedgerKind, amount_minor: int, now: datetime, refund_id: str | None = None) -> None:
        self.ledger_seq += 1
        self.new_entries.append(
            LedgerEntry(
                new_id(), self.id, self.ledger_seq, kind, self.money(amount_minor), self.booking_id, refund_id, now
            )
        )
        self._touch(now)

    def _touch(self, now: datetime) -> None:
        self.update_time = now
        self.version += 1

    def _clear_pending(self, now: datetime) -> None:
        self.pending_operation, self.pending_amount = None, 0
        self._touch(now)

    def _same_currency(self, amount: Money) -> None:
        self.amount._same(amount)

    def _expect_pending(self, operation: PendingOperation) -> None:
        if self.pending_operation is not operation:
            raise IllegalPaymentTransition(
                f"no {operation.value} is pending on payment {self.id} (status {self.status.value})"
            )

    def _expect_idle_with(self, status: PaymentStatus, verb: str) -> None:
        if self.status is PaymentStatus.UNKNOWN:
            raise PaymentOutcomeUnknown(
                f"cannot {verb} payment {self.id}: the provider's answer to an earlier operation is "
                "unknown; it will be settled by reconciliation"
            )
        if self.pending_operation is not None:
            raise OperationInProgress(
                f"cannot {verb} payment {self.id} now: a {self.pending_operation.value} is in progress; retry"
            )
        if self.status is not status:
            raise IllegalPaymentTransition(
                f"cannot {verb} a payment that is {self.status.value}; it must be {status.value}",
                metadata={"status": self.status.value},
            )


@dataclass(frozen=True)
class ChargeRecord:
    """What the card processor knows about a charge (our payment), as told by its API or a webhook."""

    reference: str
    status: str  # authorized | captured | refunded | voided | failed
    amount_minor: int
    currency: str
    captured_minor: int = 0
    refunded_minor: int = 0
    failure_code: str = ""
    authorization_expire_time: datetime | None = None


@dataclass(frozen=True)
class RefundRecord:
    """What the card processor knows about one refund (asked by our refund id, its idempotency key)."""

    reference: str
    status: str  # succeeded | failed | pending
    failure_code: str = ""


@dataclass(frozen=True)
class DepositPolicy:
    """A place's prepayment policy: the whole price, a percentage, or a fixed amount at confirmation;
    the rest (the balance) later. A no-show or late cancellation may keep the deposit as a fee."""

    percent: int | None = None
    fixed: Money | None = None

    def split(self, total: Money) -> tuple[Money, Money]:
        """(deposit, balance) of a booking's price; the deposit never exceeds the price."""
        if self.fixed is not None:
            deposit = min(self.fixed.amount_minor, total.amount_minor)
            total._same(self.fixed)
        elif self.percent is not None:
            if not 0 <= self.percent <= 100:
                raise InvalidAmount("deposit percent must be between 0 and 100")
            # Round the deposit up to a whole minor unit: the host is never short of a cent.
            deposit = -(-total.amount_minor * self.percent // 100)
        else:
            deposit = total.amount_minor
        return Money(deposit, total.currency), Money(total.amount_minor - deposit, total.currency)

    def kinds(self, total: Money) -> list[tuple[PaymentKind, Money]]:
        """The payments a booking needs: FULL, or DEPOSIT then BALANCE (zero parts left out)."""
        deposit, balance = self.split(total)
        if balance.amount_minor == 0:
            return [(PaymentKind.FULL, total)]
        parts = [(PaymentKind.DEPOSIT, deposit), (PaymentKind.BALANCE, balance)]
        return [(kind, money) for kind, money in parts if money.amount_minor > 0]
