"""The Booking aggregate: its state machine, append-only history, price quote and refund policy.

Plain Python: no gRPC, SQL or generated code. Times are aware UTC datetimes; money is integer
minor units."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from booking.domain.errors import FlowInProgress, IllegalStatusTransition, WaitlistEntryNotFound, invalid

MAX_RANGES = 60
SYSTEM_ACTOR = "system"


class Status(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    HELD = "held"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PAYMENT_FAILED = "payment_failed"
    COMPLETED = "completed"
    NO_SHOW = "no_show"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {
        Status.REJECTED,
        Status.CANCELLED,
        Status.EXPIRED,
        Status.PAYMENT_FAILED,
        Status.COMPLETED,
        Status.NO_SHOW,
    }
)
# Statuses that occupy (or ask for) slots and count against a client's pending cap.
PENDING = frozenset({Status.REQUESTED, Status.APPROVED, Status.HELD})

# The whole lifecycle. REQUEST places: requested -> approved -> confirmed. INSTANT: held -> confirmed.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.APPROVED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED}),
    Status.APPROVED: frozenset({Status.CONFIRMED, Status.CANCELLED, Status.EXPIRED, Status.PAYMENT_FAILED}),
    Status.HELD: frozenset(
        {Status.CONFIRMED, Status.CANCELLED, Status.EXPIRED, Status.PAYMENT_FAILED, Status.REJECTED}
    ),
    Status.CONFIRMED: frozenset({Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW}),
}


class SagaState(StrEnum):
    NONE = "none"
    HOLDING = "holding"
    AUTHORIZING = "authorizing"
    CONFIRMING = "confirming"
    CAPTURING = "capturing"
    COMPENSATING = "compensating"
    REFUNDING = "refunding"
    DONE = "done"
    STUCK = "stuck"

    @property
    def in_progress(self) -> bool:
        return self not in (SagaState.NONE, SagaState.DONE, SagaState.STUCK)


class BookingMode(StrEnum):
    INSTANT = "instant"
    REQUEST = "request"


class DepositKind(StrEnum):
    FULL_PREPAYMENT = "full_prepayment"
    PERCENT = "percent"
    FIXED = "fixed"


@dataclass(frozen=True, order=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise invalid("INVALID_TIME_RANGE", "time ranges need time zones (UTC)")
        if self.end <= self.start:
            raise invalid("INVALID_TIME_RANGE", f"range end {self.end.isoformat()} is not after its start")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, other: TimeRange) -> bool:
        return self.start < other.end and other.start < self.end

    def shifted(self, delta: timedelta) -> TimeRange:
        return TimeRange(self.start + delta, self.end + delta)


def normalize_ranges(ranges: list[TimeRange]) -> tuple[TimeRange, ...]:
    """Sorted, 1-60, non-overlapping (touching is fine), else INVALID_TIME_RANGE."""
    if not ranges:
        raise invalid("INVALID_TIME_RANGE", "at least one time range is required")
    if len(ranges) > MAX_RANGES:
        raise invalid("INVALID_TIME_RANGE", f"at most {MAX_RANGES} ranges per booking")
    ordered = sorted(ranges)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.overlaps(after):
            raise invalid("INVALID_TIME_RANGE", "the requested ranges overlap each other")
    return tuple(ordered)


@dataclass(frozen=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int):
            raise TypeError("money is integer minor units")

    def percent(self, pct: int) -> Money:
        return Money(self.amount_minor * pct // 100, self.currency)

    def __sub__(self, other: Money) -> Money:
        assert other.currency == self.currency
        return Money(self.amount_minor - other.amount_minor, self.currency)


@dataclass(frozen=True)
class RefundPolicy:
    """Full refund up to `full_refund_notice` before the start, `partial_percent` after, none once started."""

    full_refund_notice: timedelta = timedelta(hours=24)
    partial_percent: int = 0

    def refund_percent(self, now: datetime, start: datetime, by_host: bool) -> int:
        if by_host:
            return 100
        if now >= start:
            return 0
        if start - now >= self.full_refund_notice:
            return 100
        return self.partial_percent


@dataclass(frozen=True)
class DepositPolicy:
    kind: DepositKind = DepositKind.FULL_PREPAYMENT
    percent: int = 0
    fixed_minor: int = 0

    def deposit_for(self, price: Money) -> Money:
        if self.kind is DepositKind.PERCENT:
            return Money(price.amount_minor * self.percent // 100, price.currency)
        if self.kind is DepositKind.FIXED:
            return Money(min(self.fixed_minor, price.amount_minor), price.currency)
        return price

    @property
    def prepaid(self) -> bool:
        """Full prepayment is captured at confirmation; deposits keep the authorization until the end."""
        return self.kind is DepositKind.FULL_PREPAYMENT


@dataclass(frozen=True)
class Place:
    """What booking needs to know about a place (a snapshot from the availability service)."""

    id: str
    owner_id: str
    price_per_hour: Money
    booking_mode: BookingMode
    capacity: int = 1
    unit_count: int = 1
    active: bool = True
    slot_granularity: timedelta = timedelta(minutes=30)
    deposit: DepositPolicy = DepositPolicy()
    refund: RefundPolicy = RefundPolicy()
    title: str = ""
    city: str = ""
    time_zone: str = "UTC"


def quote_price(place: Place, ranges: tuple[TimeRange, ...], units: int) -> Money:
    """Price per started slot of the place's granularity, pro rata of the hourly price, times units."""
    gran_s = int(place.slot_granularity.total_seconds()) or 1800
    total = 0
    for r in ranges:
        slots = -(-int(r.duration.total_seconds()) // gran_s)
        total += -(-(place.price_per_hour.amount_minor * slots * gran_s) // 3600)
    return Money(total * units, place.price_per_hour.currency)


@dataclass(frozen=True)
class StatusChange:
    from_status: Status | None
    to_status: Status
    actor_id: str
    reason: str
    at: datetime
    seq: int = 1  # the booking's version right after the change: unique and increasing


@dataclass(frozen=True)
class Cancellation:
    actor_id: str
    by_host: bool
    reason: str
    refund_percent: int
    refund_minor: int
    cancel_time: datetime
    refund_id: str = ""


@dataclass(frozen=True)
class PendingMove:
    """What a reschedule still owes once the booking has moved: the old hold to release and the
    price difference to refund. Kept on the booking (saga 'refunding') until both are done, so that
    the recovery worker finishes them when the call that moved the booking could not."""

    step: str  # "reschedule:<request id>": the peer calls' request ids derive from it
    old_hold_id: str
    refund_minor: int


@dataclass
class BookingEvent:
    """Something that happened to a booking; the adapters turn it into an outbox message."""

    kind: str  # requested, approved, rejected, confirmed, cancelled, expired, completed, ...
    booking: Booking
    previous_status: Status | None = None
    reason: str = ""
    amount: Money | None = None  # fee_unpaid: what could not be collected


@dataclass
class Booking:
    id: str
    client_id: str
    host_id: str
    place_id: str
    mode: BookingMode
    ranges: tuple[TimeRange, ...]
    guests: int
    units: int
    price: Money
    deposit: Money
    deposit_policy: DepositPolicy
    refund_policy: RefundPolicy
    status: Status
    created_at: datetime
    updated_at: datetime
    request_id: str = ""
    fingerprint: str = ""
    saga_state: SagaState = SagaState.NONE
    hold_id: str = ""
    payment_id: str = ""
    payment_status: str = ""
    failure_reason: str = ""
    note: str = ""
    series_id: str = ""
    expire_time: datetime | None = None
    due_time: datetime | None = None
    cancellation: Cancellation | None = None
    pending_move: PendingMove | None = None
    version: int = 1
    history: list[StatusChange] = field(default_factory=list)
    # New history entries and events since load; the repository persists them.
    new_history: list[StatusChange] = field(default_factory=list, repr=False)
    events: list[BookingEvent] = field(default_factory=list, repr=False)

    # ----- creation -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        client_id: str,
        place: Place,
        ranges: tuple[TimeRange, ...],
        guests: int,
        units: int,
        note: str,
        request_id: str,
        fingerprint: str,
        now: datetime,
        request_ttl: timedelta,
        hold_ttl: timedelta,
        series_id: str = "",
        booking_id: str | None = None,
    ) -> Booking:
        price = quote_price(place, ranges, units)
        instant = place.booking_mode is BookingMode.INSTANT
        status = Status.HELD if instant else Status.REQUESTED
        expire = now + (hold_ttl if instant else request_ttl)
        booking = cls(
            id=booking_id or str(uuid.uuid4()),
            client_id=client_id,
            host_id=place.owner_id,
            place_id=place.id,
            mode=place.booking_mode,
            ranges=ranges,
            guests=guests,
            units=units,
            price=price,
            deposit=place.deposit.deposit_for(price),
            deposit_policy=place.deposit,
            refund_policy=place.refund,
            status=status,
            created_at=now,
            updated_at=now,
            request_id=request_id,
            fingerprint=fingerprint,
            saga_state=SagaState.HOLDING if instant else SagaState.NONE,
            note=note,
            series_id=series_id,
            expire_time=expire,
            due_time=expire,
        )
        change = StatusChange(None, status, client_id, "created", now)
        booking.history.append(change)
        booking.new_history.append(change)
        if not instant:
            booking.events.append(BookingEvent("requested", booking))
        return booking

    # ----- derived --------------------------------------------------------------------------
    @property
    def start(self) -> datetime:
        return self.ranges[0].start

    @property
    def end(self) -> datetime:
        return max(r.end for r in self.ranges)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    def is_party(self, user_id: str) -> bool:
        return user_id in (self.client_id, self.host_id)

    # ----- the state machine ----------------------------------------------------------------
    def _transition(self, to: Status, actor: str, reason: str, now: datetime, action: str) -> Status:
        allowed = TRANSITIONS.get(self.status, frozenset())
        if to not in allowed:
            raise IllegalStatusTransition(self.status.value.upper(), to.value.upper(), action)
        previous = self.status
        self.status = to
        self.touch(now)
        change = StatusChange(previous, to, actor, reason[:500], now, self.version)
        self.history.append(change)
        self.new_history.append(change)
        if to.terminal:
            self.expire_time = None
            self.due_time = None
        return previous

    def touch(self, now: datetime) -> None:
        """Every modification bumps the version (the etag); child rows are invisible to the ORM."""
        self.version += 1
        self.updated_at = now

    def set_saga(self, state: SagaState, now: datetime, recovery_after: timedelta | None = None) -> None:
        self.saga_state = state
        if state.in_progress and recovery_after is not None:
            # While a flow runs, the recovery worker looks again after `recovery_after`.
            self.due_time = now + recovery_after
        elif not state.in_progress:
            self.due_time = self._next_due()
        self.touch(now)

    def begin_flow(
        self, state: SagaState, now: datetime, recovery_after: timedelta, *, action: str, source: Status
    ) -> None:
        """Start a flow (approving, paying) on this very row. Checked here, on the version the save
        writes over, not only on the copy a request read first: of two requests that both passed the
        early checks (a double click, two request ids), one starts the flow, the other is refused."""
        self.require(source, action=action)
        if self.saga_state.in_progress:
            # Retryable: the same request retried while its flow runs learns the outcome next time,
            # a second click the booking as the first one left it.
            raise FlowInProgress(action)
        self.set_saga(state, now, recovery_after)

    def _next_due(self) -> datetime | None:
        if self.status in PENDING:
            return self.expire_time
        if self.status is Status.CONFIRMED:
            return self.end
        return None

    def approve(self, host_id: str, hold_id: str, now: datetime, payment_ttl: timedelta) -> None:
        self._transition(Status.APPROVED, host_id, "approved by host", now, "approve")
        self.hold_id = hold_id
        self.expire_time = now + payment_ttl
        self.saga_state = SagaState.DONE
        self.due_time = self.expire_time
        self.events.append(BookingEvent("approved", self))

    def reject(self, actor: str, reason: str, now: datetime) -> None:
        previous = self._transition(Status.REJECTED, actor, reason or "rejected", now, "reject")
        self.saga_state = SagaState.DONE
        self.events.append(BookingEvent("rejected", self, previous, reason))

    def confirm(self, now: datetime, payment_status: str) -> None:
        self._transition(Status.CONFIRMED, SYSTEM_ACTOR, "paid", now, "confirm")
        self.payment_status = payment_status
        self.saga_state = SagaState.DONE
        self.expire_time = None
        self.due_time = self.end
        self.events.append(BookingEvent("confirmed", self))

    def fail_payment(self, failure_reason: str, now: datetime) -> None:
        previous = self._transition(Status.PAYMENT_FAILED, SYSTEM_ACTOR, failure_reason, now, "fail the payment of")
        self.failure_reason = failure_reason
        self.payment_status = "failed"
        self.events.append(BookingEvent("payment_failed", self, previous, failure_reason))

    def expire(self, now: datetime, reason: str = "deadline passed") -> None:
        previous = self._transition(Status.EXPIRED, SYSTEM_ACTOR, reason, now, "expire")
        self.events.append(BookingEvent("expired", self, previous, reason))

    def cancel(self, actor: str, by_host: bool, reason: str, now: datetime) -> Cancellation:
        if self.status is Status.CONFIRMED and now >= self.start:
            raise IllegalStatusTransition("CONFIRMED (already started)", "CANCELLED", "cancel")
        paid = self.status is Status.CONFIRMED
        pct = self.refund_policy.refund_percent(now, self.start, by_host) if paid else 100
        refundable = self.charged_minor() if paid else 0
        previous = self._transition(Status.CANCELLED, actor, reason or "cancelled", now, "cancel")
        self.cancellation = Cancellation(actor, by_host, reason[:500], pct, refundable * pct // 100, now)
        self.events.append(BookingEvent("cancelled", self, previous, reason))
        return self.cancellation

    def charged_minor(self) -> int:
        """What the client has paid (captured) or reserved (authorized) so far."""
        return self.price.amount_minor if self.deposit_policy.prepaid else self.deposit.amount_minor

    def complete(self, actor: str, now: datetime) -> None:
        if now < self.end:
            raise IllegalStatusTransition("CONFIRMED (not ended yet)", "COMPLETED", "complete")
        self._transition(Status.COMPLETED, actor, "ended", now, "complete")
        self.events.append(BookingEvent("completed", self))

    def mark_no_show(self, host_id: str, reason: str, now: datetime) -> None:
        if self.status is Status.CONFIRMED and now < self.start:
            raise IllegalStatusTransition("CONFIRMED (not started yet)", "NO_SHOW", "mark as no-show")
        self._transition(Status.NO_SHOW, host_id, reason or "no show", now, "mark as no-show")
        self.events.append(BookingEvent("no_show", self))

    def reschedule(
        self,
        ranges: tuple[TimeRange, ...],
        price: Money,
        hold_id: str,
        actor: str,
        now: datetime,
        step: str,
        recovery_after: timedelta,
    ):
        """Move to `ranges` (already held under `hold_id`). The old hold's release and the refund of
        a lower price are owed from here on (pending_move, saga 'refunding')."""
        if self.status is not Status.CONFIRMED:
            raise IllegalStatusTransition(self.status.value.upper(), "CONFIRMED", "reschedule")
        if now >= self.start:
            raise IllegalStatusTransition("CONFIRMED (already started)", "CONFIRMED", "reschedule")
        if self.saga_state.in_progress:
            raise IllegalStatusTransition("CONFIRMED (a change is in progress)", "CONFIRMED", "reschedule")
        old = (self.ranges, self.price)
        refund = self.price.amount_minor - price.amount_minor if self.payment_status == "captured" else 0
        self.pending_move = PendingMove(step, self.hold_id, max(0, refund))
        self.ranges, self.price, self.hold_id = ranges, price, hold_id
        self.deposit = self.deposit_policy.deposit_for(price)
        self.touch(now)
        change = StatusChange(Status.CONFIRMED, Status.CONFIRMED, actor, "rescheduled", now, self.version)
        self.history.append(change)
        self.new_history.append(change)
        self.saga_state, self.due_time = SagaState.REFUNDING, now + recovery_after
        self.events.append(BookingEvent("rescheduled", self, Status.CONFIRMED, json.dumps([str(o) for o in old])))
        return old

    def fee_unpaid(self, amount: Money, reason: str) -> None:
        """The processor refused to capture what this ended booking owes: the client and the agents
        are told (collecting it is the agents' business)."""
        self.events.append(BookingEvent("fee_unpaid", self, self.status, reason, amount))

    def require(self, *statuses: Status, action: str) -> None:
        if self.status not in statuses:
            wanted = "/".join(s.value.upper() for s in statuses)
            raise IllegalStatusTransition(self.status.value.upper(), wanted, action)


def fingerprint(*parts: object) -> str:
    """A stable hash of a request's parameters, to tell a retry from a reused request id."""
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:32]


def derived_request_id(booking_id: str, step: str) -> str:
    """Request ids for peer calls are derived from the booking, so every retry of a step is the same call."""
    return str(uuid.uuid5(uuid.UUID(booking_id), step))


REVIEW_WINDOW = timedelta(days=90)


@dataclass
class Review:
    id: str
    booking_id: str
    place_id: str
    client_id: str
    host_id: str
    rating: int
    text: str
    created_at: datetime
    updated_at: datetime
    reply_text: str = ""
    reply_author: str = ""
    reply_time: datetime | None = None
    hidden: bool = False
    hide_reason: str = ""

    @classmethod
    def write(cls, booking: Booking, client_id: str, rating: int, text: str, now: datetime) -> Review:
        from booking.domain.errors import BookingNotReviewable, NotBookingClient

        if client_id != booking.client_id:
            raise NotBookingClient()
        if booking.status is not Status.COMPLETED:
            raise BookingNotReviewable(f"only completed bookings can be reviewed; this one is {booking.status.value}")
        if now - booking.end > REVIEW_WINDOW:
            raise BookingNotReviewable("reviews are accepted up to 90 days after the booking")
        if not 1 <= rating <= 5:
            raise invalid("INVALID_RATING", "rating must be 1-5")
        if len(text) > 5000:
            raise invalid("INVALID_TEXT", "review text is at most 5000 characters")
        return cls(str(uuid.uuid4()), booking.id, booking.place_id, client_id, booking.host_id, rating, text, now, now)

    def reply(self, host_id: str, text: str, now: datetime) -> bool:
        """The host replies once; the same reply again is a retry (False: nothing changes)."""
        from booking.domain.errors import NotPlaceOwner, ReviewAlreadyReplied

        if host_id != self.host_id:
            raise NotPlaceOwner()
        if not 1 <= len(text) <= 2000:
            raise invalid("INVALID_TEXT", "reply text is 1-2000 characters")
        if self.reply_time is not None:
            if self.reply_text == text:
                return False
            raise ReviewAlreadyReplied()
        self.reply_text, self.reply_author, self.reply_time, self.updated_at = text, host_id, now, now
        return True

    def hide(self, reason: str, now: datetime) -> bool:
        """Returns False if it was hidden already (nothing changes)."""
        if not 1 <= len(reason) <= 500:
            raise invalid("INVALID_REASON", "a reason of 1-500 characters is required")
        if self.hidden:
            return False
        self.hidden, self.hide_reason, self.updated_at = True, reason, now
        return True


class WaitState(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    FULFILLED = "fulfilled"
    LEFT = "left"
    EXPIRED = "expired"


@dataclass
class WaitlistEntry:
    id: str
    place_id: str
    client_id: str
    range: TimeRange
    guests: int
    units: int
    state: WaitState
    created_at: datetime
    updated_at: datetime
    hold_id: str = ""
    offer_expire_time: datetime | None = None
    position: int = 0
    booking_id: str = ""  # the booking that took the offer (FULFILLED)

    def offer(self, hold_id: str, until: datetime, now: datetime) -> None:
        self.state, self.hold_id, self.offer_expire_time, self.updated_at = WaitState.OFFERED, hold_id, until, now

    def keep_waiting(self, now: datetime) -> None:
        """The offer could not be made (the range is still taken for this entry): back in line."""
        self.state, self.hold_id, self.offer_expire_time, self.updated_at = WaitState.WAITING, "", None, now

    def offer_active(self, now: datetime) -> bool:
        return (
            self.state is WaitState.OFFERED
            and bool(self.hold_id)
            and self.offer_expire_time is not None
            and now < self.offer_expire_time
        )

    def check_offer_fits(self, client_id: str, place_id: str, ranges: tuple[TimeRange, ...], units: int) -> None:
        """A booking taking this entry's offer books exactly what the offer holds, for its client."""
        if client_id != self.client_id or place_id != self.place_id:
            raise WaitlistEntryNotFound(self.id)
        if ranges != (self.range,) or units != self.units:
            raise invalid(
                "WAITLIST_OFFER_MISMATCH", "ranges and units must be exactly the waitlist entry's range and units"
            )

    def fulfil(self, booking_id: str, now: datetime) -> None:
        self.state, self.booking_id, self.updated_at = WaitState.FULFILLED, booking_id, now

    def taken_by(self, booking_id: str) -> bool:
        """This booking took the offer already (a claim run again after its commit)."""
        return self.state is WaitState.FULFILLED and self.booking_id == booking_id

    def lapse(self, now: datetime) -> None:
        """The offer's hold lapsed unused (or the wanted range has started)."""
        if self.state in (WaitState.WAITING, WaitState.OFFERED):
            self.state, self.updated_at = WaitState.EXPIRED, now

    def leave(self, now: datetime) -> None:
        if self.state in (WaitState.WAITING, WaitState.OFFERED):
            self.state, self.updated_at = WaitState.LEFT, now


@dataclass
class ReviewCreated:
    review: Review


@dataclass
class ReviewHidden:
    review: Review


@dataclass
class WaitlistOffered:
    entry: WaitlistEntry


# Every event the booking service publishes; the adapters turn each into an outbox message.
DomainEvent = BookingEvent | ReviewCreated | ReviewHidden | WaitlistOffered
