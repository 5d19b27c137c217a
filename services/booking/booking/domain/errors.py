"""Errors of the booking domain, each a kit error kind with a stable reason clients branch on."""

from __future__ import annotations

from kit.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    Unavailable,
)


class BookingNotFound(NotFound):
    def __init__(self, booking_id: str) -> None:
        super().__init__(f"booking {booking_id} not found", reason="BOOKING_NOT_FOUND")


class PlaceNotFound(NotFound):
    def __init__(self, place_id: str) -> None:
        super().__init__(f"place {place_id} not found", reason="PLACE_NOT_FOUND")


class PlaceInactive(FailedPrecondition):
    def __init__(self, place_id: str) -> None:
        super().__init__(f"place {place_id} is not active", reason="PLACE_INACTIVE")


class IllegalStatusTransition(FailedPrecondition):
    def __init__(self, current: str, wanted: str, action: str) -> None:
        super().__init__(
            f"cannot {action} a booking that is {current} (would become {wanted})",
            reason="ILLEGAL_STATUS_TRANSITION",
            metadata={"current_status": current},
        )


class SlotUnavailable(FailedPrecondition):
    """The ranges are taken; `conflicting_ranges` lists which (list of TimeRange)."""

    def __init__(self, message: str, conflicting_ranges=(), place_id: str = "") -> None:
        super().__init__(message, reason="SLOT_UNAVAILABLE", metadata={"place_id": place_id} if place_id else {})
        self.details["conflicting_ranges"] = list(conflicting_ranges)

    @property
    def conflicting_ranges(self) -> list:
        return list(self.details.get("conflicting_ranges", []))


class SlotAvailable(FailedPrecondition):
    """A waitlist join for a range nothing occupies: there is nothing to wait for."""

    def __init__(self, place_id: str) -> None:
        super().__init__(
            "nothing occupies this range: book it instead of waiting for it",
            reason="SLOT_AVAILABLE",
            metadata={"place_id": place_id},
        )


class BookingPaymentDeclined(PaymentDeclined):
    def __init__(self, failure_reason: str = "card_declined") -> None:
        super().__init__(
            f"the payment was declined ({failure_reason})",
            reason="PAYMENT_DECLINED",
            metadata={"failure_reason": failure_reason},
        )


class TooManyPending(FailedPrecondition):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"you already have {limit} pending bookings (held or awaiting approval); "
            "confirm or cancel some before booking more",
            reason="TOO_MANY_PENDING",
            metadata={"limit": str(limit)},
        )


class NotBookingParty(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("only the booking's client, its host or an operator may do this", reason="NOT_BOOKING_PARTY")


class NotPlaceOwner(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("only the host of this place may do this", reason="NOT_PLACE_OWNER")


class NotOperator(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("only operators may do this", reason="NOT_OPERATOR")


class NotBookingClient(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("only the booking's client may do this", reason="NOT_BOOKING_CLIENT")


class StaleEtag(Conflict):
    def __init__(self) -> None:
        super().__init__("the booking changed since you read it (stale etag)", reason="CONCURRENT_MODIFICATION")


class BookingNotReviewable(FailedPrecondition):
    def __init__(self, why: str) -> None:
        super().__init__(why, reason="BOOKING_NOT_REVIEWABLE")


class ReviewAlreadyExists(FailedPrecondition):
    def __init__(self) -> None:
        super().__init__("this booking has already been reviewed", reason="REVIEW_ALREADY_EXISTS")


class ReviewAlreadyReplied(FailedPrecondition):
    def __init__(self) -> None:
        super().__init__("the host has already replied to this review", reason="REVIEW_ALREADY_REPLIED")


class ReviewNotFound(NotFound):
    def __init__(self, review_id: str) -> None:
        super().__init__(f"review {review_id} not found", reason="REVIEW_NOT_FOUND")


class WaitlistEntryNotFound(NotFound):
    def __init__(self, entry_id: str) -> None:
        super().__init__(f"waitlist entry {entry_id} not found", reason="WAITLIST_ENTRY_NOT_FOUND")


class WaitlistOfferNotActive(FailedPrecondition):
    """A booking that would take a waitlist offer the entry does not hold (any more)."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(
            f"waitlist entry {entry_id} holds no offer (not offered, lapsed or taken already)",
            reason="WAITLIST_OFFER_NOT_ACTIVE",
        )


class PeerUnavailable(Unavailable):
    """A peer could not be reached or failed; the booking was brought to a defined state."""


class FlowInProgress(Unavailable):
    """An approval or a payment of the booking is running: its outcome is not known yet."""

    def __init__(self, action: str) -> None:
        flow = {"approve": "approval", "confirm": "payment"}.get(action, action)
        super().__init__(
            f"this booking's {flow} is in progress; retry shortly to learn its outcome", reason="BOOKING_IN_PROGRESS"
        )


class BookingBusy(Unavailable):
    def __init__(self) -> None:
        super().__init__("too many bookings are being processed right now; retry shortly", reason="BOOKING_BUSY")


def invalid(reason: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason)
