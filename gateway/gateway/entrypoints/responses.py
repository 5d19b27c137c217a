"""Response bodies of the REST API, so that the OpenAPI document describes every success answer and
FastAPI checks each answer against it.

Most routes answer with a service's proto message in the proto3 JSON mapping of `proto_json.to_json`:
snake_case names; every field without presence always present (zero values included: "", 0, false,
[]); message fields and Timestamps only when set (`| SkipJsonSchema[None] = None` here: documented as
optional, never null on the wire); enums by name; int64 as JSON numbers; Timestamps as RFC 3339 strings
("2025-03-30T08:00:00Z"); Durations as seconds strings ("1800s"). The models mirror the protos field for
field (tests/unit/gateway/test_gateway_response_models.py compares them with the descriptors and
round-trips messages through them); routes that return `to_json` dicts use
`response_model_exclude_unset=True`, so the wire format is exactly the proto JSON. The models are
strict: an answer that does not fit them is a bug (a 500 the tests see), never silently coerced."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

Timestamp = Annotated[
    str, WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-03-30T08:00:00Z"]})
]
Duration = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$", "examples": ["1800s"]})
]
PageToken = Annotated[
    str | None, Field(description="Opaque cursor of the next page (pass as `page_token`); null on the last page.")
]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Fields a message may leave unset are optional, not nullable: drop the `default: null` noise."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class StrictOut(BaseModel):
    """A response body, validated strictly: an answer that does not fit is a bug, not something to coerce."""

    model_config = ConfigDict(strict=True, json_schema_extra=_no_null_defaults)


# --- proto messages (written from the descriptors and their comments; the unit test keeps them in step)

PlaceBookingMode = Literal["BOOKING_MODE_UNSPECIFIED", "INSTANT", "REQUEST"]
DepositPolicyKind = Literal["KIND_UNSPECIFIED", "FULL_PREPAYMENT", "DEPOSIT_PERCENT", "DEPOSIT_FIXED"]
CalendarEntryKind = Literal["KIND_UNSPECIFIED", "HOLD", "BLOCK"]
HoldState = Literal["STATE_UNSPECIFIED", "HELD", "CONFIRMED", "RELEASED", "EXPIRED"]
BlockState = Literal["STATE_UNSPECIFIED", "ACTIVE", "REMOVED"]
BookingStatus = Literal[
    "STATUS_UNSPECIFIED",
    "REQUESTED",
    "APPROVED",
    "HELD",
    "CONFIRMED",
    "REJECTED",
    "CANCELLED",
    "EXPIRED",
    "PAYMENT_FAILED",
    "COMPLETED",
    "NO_SHOW",
]
BookingSagaState = Literal[
    "SAGA_STATE_UNSPECIFIED",
    "SAGA_STATE_HOLDING_SLOTS",
    "SAGA_STATE_AUTHORIZING_PAYMENT",
    "SAGA_STATE_CONFIRMING_HOLD",
    "SAGA_STATE_CAPTURING_PAYMENT",
    "SAGA_STATE_COMPENSATING",
    "SAGA_STATE_REFUNDING",
    "SAGA_STATE_DONE",
    "SAGA_STATE_STUCK",
]
BookingPaymentStatus = Literal[
    "PAYMENT_STATUS_UNSPECIFIED",
    "PAYMENT_STATUS_PENDING",
    "PAYMENT_STATUS_AUTHORIZED",
    "PAYMENT_STATUS_CAPTURED",
    "PAYMENT_STATUS_PARTIALLY_REFUNDED",
    "PAYMENT_STATUS_REFUNDED",
    "PAYMENT_STATUS_VOIDED",
    "PAYMENT_STATUS_FAILED",
    "PAYMENT_STATUS_UNKNOWN",
]
PaymentKind = Literal["PAYMENT_KIND_UNSPECIFIED", "PAYMENT_KIND_FULL", "PAYMENT_KIND_DEPOSIT", "PAYMENT_KIND_BALANCE"]
PaymentStatus = Literal[
    "STATUS_UNSPECIFIED",
    "REQUIRES_AUTHORIZATION",
    "AUTHORIZED",
    "CAPTURED",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
    "VOIDED",
    "FAILED",
    "UNKNOWN",
]
RefundStatus = Literal["STATUS_UNSPECIFIED", "PENDING", "SUCCEEDED", "FAILED"]
LedgerEntryKind = Literal["KIND_UNSPECIFIED", "AUTHORIZATION", "CAPTURE", "REFUND", "VOID", "RELEASE"]
Channel = Literal["CHANNEL_UNSPECIFIED", "CHANNEL_EMAIL", "CHANNEL_SMS", "CHANNEL_WEBHOOK", "CHANNEL_IN_APP"]
NotificationStatus = Literal["STATUS_UNSPECIFIED", "QUEUED", "DEFERRED", "SENT", "FAILED", "CANCELLED"]


class MoneyOut(StrictOut):
    """An amount of money in a single currency, in the currency's minor unit. (reserva.type.v1.Money)"""

    amount_minor: int = Field(
        description=(
            "Amount in the minor unit of `currency_code` (cents for EUR and USD, yen for JPY; the exponent is the "
            "ISO 4217 one)."
        )
    )
    currency_code: str = Field(description='Three-letter upper-case ISO 4217 code, for example "EUR".')


class DepositPolicyOut(StrictOut):
    """The amount charged when a booking is confirmed; the balance, if any, is charged later by the booking service.
    (reserva.availability.v1.DepositPolicy)"""

    kind: DepositPolicyKind = Field(description="Kind of deposit.")
    percent: int = Field(description="Required for DEPOSIT_PERCENT, otherwise must be 0.")
    fixed_amount: MoneyOut | SkipJsonSchema[None] = Field(
        default=None, description="Required for DEPOSIT_FIXED, otherwise must be unset."
    )


class CancellationPolicyOut(StrictOut):
    """Refund rules applied when a client cancels a confirmed booking. (reserva.availability.v1.CancellationPolicy)"""

    full_refund_notice: Duration | SkipJsonSchema[None] = Field(
        default=None,
        description="Minimum time between cancellation and the booking's start for a full refund, 0-365 days.",
    )
    partial_refund_percent: int = Field(
        description="Percentage 0-100 refunded when cancelling later than `full_refund_notice` but before the start."
    )


class LocalTimeOut(StrictOut):
    """A wall-clock time of day in some place's local time zone, without a date and without an offset (the zone comes
    from the enclosing resource). (reserva.type.v1.LocalTime)"""

    hours: int = Field(description="Hour of day, 0-24.")
    minutes: int = Field(description="Minute of hour, 0-59.")


class OpeningIntervalOut(StrictOut):
    """One weekly opening interval in local time, [start, end) on `weekday`.
    (reserva.availability.v1.OpeningInterval)"""

    weekday: int = Field(description="ISO weekday: 1 = Monday ... 7 = Sunday.")
    start: LocalTimeOut | SkipJsonSchema[None] = Field(default=None, description="Local opening time.")
    end: LocalTimeOut | SkipJsonSchema[None] = Field(
        default=None, description="Local closing time, after `start`; 24:00 means end of day."
    )


class DateOut(StrictOut):
    """A calendar date without a time zone (its meaning comes from the context, usually a place's local time zone).
    (reserva.type.v1.Date)"""

    year: int = Field(description="Year, 1-9999.")
    month: int = Field(description="Month of year, 1-12.")
    day: int = Field(description="Day of month, 1-31, valid for the given month and year.")


class ScheduleOut(StrictOut):
    """Opening hours and booking rules of a place, all read in the place's `time_zone`.
    (reserva.availability.v1.Schedule)"""

    opening_hours: list[OpeningIntervalOut] = Field(description="Weekly opening hours.")
    first_bookable_date: DateOut | SkipJsonSchema[None] = Field(
        default=None, description="First local date that can be booked."
    )
    last_bookable_date: DateOut | SkipJsonSchema[None] = Field(
        default=None, description="Last local date that can be booked (inclusive)."
    )
    blocked_dates: list[DateOut] = Field(description="Local dates on which the place is closed, at most 1000.")
    blocked_weekdays: list[int] = Field(
        description="ISO weekdays (1 = Monday ... 7 = Sunday) on which the place is closed."
    )
    minimum_notice: Duration | SkipJsonSchema[None] = Field(
        default=None, description="Minimum time between now and a slot's start, 0-365 days."
    )
    maximum_advance: Duration | SkipJsonSchema[None] = Field(
        default=None, description="Maximum time between now and a slot's start, 0-730 days."
    )
    slot_granularity: Duration | SkipJsonSchema[None] = Field(
        default=None,
        description="Slot alignment and step: ranges must start and end on multiples of it from local midnight.",
    )
    minimum_duration: Duration | SkipJsonSchema[None] = Field(
        default=None, description="Minimum length of one range, a multiple of `slot_granularity`."
    )
    maximum_duration: Duration | SkipJsonSchema[None] = Field(
        default=None, description="Maximum length of one range, a multiple of `slot_granularity`, at most 31 days."
    )
    buffer_before: Duration | SkipJsonSchema[None] = Field(
        default=None, description="Free time kept before each hold (cleaning, setup), 0-24 hours."
    )
    buffer_after: Duration | SkipJsonSchema[None] = Field(
        default=None, description="Free time kept after each hold, 0-24 hours."
    )


class PlaceOut(StrictOut):
    """A bookable place: a room, a court, a desk, possibly with several identical units.
    (reserva.availability.v1.Place)"""

    id: str = Field(description="Identifier, a UUID assigned by the server on create.")
    owner_id: str = Field(description="UUID of the owning host: the caller of CreatePlace.")
    title: str = Field(description="Display title, 1-200 characters.")
    description: str = Field(description="Free-text description, at most 5000 characters.")
    city: str = Field(description="City name, 1-100 characters.")
    address: str = Field(description="Street address, 1-300 characters.")
    capacity: int = Field(description="Maximum number of people per unit, 1-10000.")
    unit_count: int = Field(description="Number of identical units that can be held concurrently, 1-1000.")
    price_per_hour: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Price of one unit for one hour.")
    time_zone: str = Field(description='IANA time zone name of the place, for example "Europe/Paris".')
    booking_mode: PlaceBookingMode = Field(description="Instant or on-request booking.")
    photo_urls: list[str] = Field(description="Photo URLs (https only), at most 20, each at most 2048 characters.")
    active: bool = Field(description="False once deleted (DeletePlace).")
    rating_average: float = Field(description="Mean of applied ratings, 1.0-5.0; 0 when `rating_count` is 0.")
    rating_count: int = Field(description="Number of ratings currently applied (removed ones excluded).")
    deposit_policy: DepositPolicyOut | SkipJsonSchema[None] = Field(
        default=None, description="How much the client pays when the booking is confirmed."
    )
    cancellation_policy: CancellationPolicyOut | SkipJsonSchema[None] = Field(
        default=None, description="Refund rules on cancellation by the client."
    )
    schedule: ScheduleOut | SkipJsonSchema[None] = Field(default=None, description="Opening hours and booking rules.")
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")
    update_time: Timestamp | SkipJsonSchema[None] = Field(
        default=None, description="Last modification time (including rating changes)."
    )
    etag: str = Field(description="Opaque version tag (also the ETag header); send it as If-Match.")


class PlaceSummaryOut(StrictOut):
    """The public subset of a place shown in search results. (reserva.availability.v1.PlaceSummary)"""

    id: str = Field(description="Place UUID.")
    title: str = Field(description="Display title.")
    city: str = Field(description="City name.")
    capacity: int = Field(description="Maximum people per unit.")
    price_per_hour: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Price of one unit for one hour.")
    rating_average: float = Field(description="Mean rating 1.0-5.0, 0 when unrated.")
    rating_count: int = Field(description="Number of ratings.")
    time_zone: str = Field(description="IANA time zone of the place.")
    booking_mode: PlaceBookingMode = Field(description="Instant or on-request booking.")
    cover_photo_url: str = Field(description="Cover photo URL; empty if the place has no photo.")


class TimeRangeOut(StrictOut):
    """An absolute, half-open interval of time [start_time, end_time). (reserva.type.v1.TimeRange)"""

    start_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Inclusive start, UTC.")
    end_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Exclusive end, UTC.")


class PlaceAvailabilityOut(StrictOut):
    """One place with its earliest free slots in the searched window. (reserva.availability.v1.PlaceAvailability)"""

    place: PlaceSummaryOut | SkipJsonSchema[None] = Field(default=None, description="The place.")
    next_free_slots: list[TimeRangeOut] = Field(
        description=(
            "Up to `max_slots_per_place` free slots of exactly the requested duration, earliest first, possibly "
            "overlapping each other (they are alternatives)."
        )
    )


class FreeSlotOut(StrictOut):
    """One free, bookable slot. (reserva.availability.v1.FreeSlot)"""

    range: TimeRangeOut | SkipJsonSchema[None] = Field(
        default=None, description="The slot, UTC, exactly the requested duration."
    )
    local_start: str = Field(
        description=(
            "Start as ISO-8601 local wall time with the place's UTC offset at that instant, for example "
            '"2025-03-30T10:00:00+02:00".'
        )
    )


class CalendarEntryOut(StrictOut):
    """One occupied range of a place's calendar. (reserva.availability.v1.CalendarEntry)"""

    kind: CalendarEntryKind = Field(description="Kind of entry.")
    range: TimeRangeOut | SkipJsonSchema[None] = Field(
        default=None, description="The occupied range (without buffers)."
    )
    hold_id: str = Field(description="Hold UUID when `kind` is HOLD, else empty.")
    block_id: str = Field(description="Block UUID when `kind` is BLOCK, else empty.")
    booking_id: str = Field(description="Booking UUID of the hold, if any.")
    units: int = Field(description="Units occupied: the hold's units, or `unit_count` for a block.")
    hold_state: HoldState = Field(description="State of the hold when `kind` is HOLD (HELD or CONFIRMED).")
    expire_time: Timestamp | SkipJsonSchema[None] = Field(
        default=None, description="Expiry of a HELD hold; unset otherwise."
    )
    reason: str = Field(description="Reason of a block; empty for holds.")


class BlockOut(StrictOut):
    """Ranges a host made unavailable for all units of a place. (reserva.availability.v1.Block)"""

    id: str = Field(description="Identifier, a UUID.")
    place_id: str = Field(description="UUID of the place.")
    ranges: list[TimeRangeOut] = Field(description="Blocked ranges, sorted by start, non-overlapping.")
    reason: str = Field(description="Free-text reason, at most 500 characters.")
    state: BlockState = Field(description="Current state.")
    created_by: str = Field(description="UUID of the user who created the block.")
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")
    update_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Time of the last state change.")


class StatusChangeOut(StrictOut):
    """One transition in a booking's history. (reserva.booking.v1.StatusChange)"""

    from_status: BookingStatus = Field(description="Status before; STATUS_UNSPECIFIED for the creation entry.")
    to_status: BookingStatus = Field(description="Status after.")
    actor_id: str = Field(description='UUID of the user who caused it, or "system" for sweepers and payment outcomes.')
    reason: str = Field(description="Reason given by the actor or the system, at most 500 characters; may be empty.")
    change_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="When it happened.")


class CancellationOut(StrictOut):
    """Details of a cancellation and its refund. (reserva.booking.v1.Cancellation)"""

    actor_id: str = Field(description="UUID of the user who cancelled.")
    by_host: bool = Field(description="True if the host (or an operator) cancelled; then the refund is always 100 %.")
    reason: str = Field(description="Reason given, at most 500 characters.")
    refund_percent: int = Field(
        description="Refund percentage applied, 0-100, from the cancellation policy in force at booking time."
    )
    refund_amount: MoneyOut | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "Amount refunded (or to be refunded) to the client; zero amount in the booking's currency when nothing "
            "was paid."
        ),
    )
    refund_id: str = Field(description="UUID of the refund in the payment service; empty when no refund was due.")
    cancel_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="When the booking was cancelled.")


class BookingOut(StrictOut):
    """A client's booking of one or more ranges of a place. (reserva.booking.v1.Booking)"""

    id: str = Field(description="Identifier, a UUID.")
    client_id: str = Field(description="UUID of the client who booked (the caller of CreateBooking).")
    host_id: str = Field(description="UUID of the place's owner at booking time.")
    place_id: str = Field(description="UUID of the booked place.")
    ranges: list[TimeRangeOut] = Field(description="Booked ranges, sorted by start, non-overlapping, 1-60.")
    guests: int = Field(description="Number of guests, 1-place capacity.")
    units: int = Field(description="Units booked in each range, >= 1.")
    price: MoneyOut | SkipJsonSchema[None] = Field(
        default=None,
        description="Total price, computed by the server from the place's price at booking time (or at reschedule).",
    )
    deposit_amount: MoneyOut | SkipJsonSchema[None] = Field(
        default=None,
        description="Amount charged at confirmation per the deposit policy; equals `price` for full prepayment.",
    )
    status: BookingStatus = Field(description="Current status.")
    saga_state: BookingSagaState = Field(description="Progress of the flow behind the status.")
    hold_id: str = Field(description="UUID of the availability hold; empty before holding.")
    payment_id: str = Field(description="UUID of the (latest) payment; empty before paying.")
    payment_status: BookingPaymentStatus = Field(
        description="The payment's status as last seen by the booking service."
    )
    history: list[StatusChangeOut] = Field(description="Every status change, oldest first.")
    cancellation: CancellationOut | SkipJsonSchema[None] = Field(
        default=None, description="Set once CANCELLED: who, why and what was refunded."
    )
    note: str = Field(description="Client's note to the host, at most 1000 characters.")
    series_id: str = Field(
        description="UUID of the recurring series the booking belongs to; empty for a single booking."
    )
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")
    update_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Last modification time.")
    expire_time: Timestamp | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "Deadline of the current status: host decision (REQUESTED), client payment (APPROVED) or hold expiry "
            "(HELD)."
        ),
    )
    etag: str = Field(description="Opaque version tag, changed on every modification (including status changes).")


class ReviewReplyOut(StrictOut):
    """A host's public reply to a review. (reserva.booking.v1.ReviewReply)"""

    text: str = Field(description="Reply text, 1-2000 characters.")
    author_id: str = Field(description="UUID of the host who replied.")
    reply_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="When the reply was (last) written.")


class ReviewOut(StrictOut):
    """A client's review of a completed booking. (reserva.booking.v1.Review)"""

    id: str = Field(description="Identifier, a UUID.")
    booking_id: str = Field(description="UUID of the reviewed booking (one review per booking).")
    place_id: str = Field(description="UUID of the place.")
    client_id: str = Field(description="UUID of the reviewing client.")
    host_id: str = Field(description="UUID of the host.")
    rating: int = Field(description="Rating 1-5.")
    text: str = Field(description="Review text, at most 5000 characters; may be empty.")
    reply: ReviewReplyOut | SkipJsonSchema[None] = Field(default=None, description="Host's reply; unset if none.")
    hidden: bool = Field(
        description=(
            "True once hidden by an operator; hidden reviews are not listed to the public and their rating is "
            "removed from the place."
        )
    )
    hide_reason: str = Field(description="Operator's reason for hiding; empty unless hidden.")
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")
    update_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Last modification time.")


class DailyBookingCountOut(StrictOut):
    """Number of bookings for one day and status. (reserva.booking.v1.DailyBookingCount)"""

    date: DateOut | SkipJsonSchema[None] = Field(default=None, description="Local date in the request's time zone.")
    status: BookingStatus = Field(description="Current status of the counted bookings.")
    count: int = Field(description="Number of bookings, > 0 (zero rows are omitted).")


class BookingStatsOut(StrictOut):
    """Booking statistics over a time range. (reserva.booking.v1.BookingStats)"""

    daily_counts: list[DailyBookingCountOut] = Field(
        description="Counts per day and status, by date then status; days or statuses without bookings are omitted."
    )
    total_bookings: int = Field(description="Bookings counted.")
    cancelled_bookings: int = Field(description="Of those, bookings now CANCELLED.")
    cancellation_rate: float = Field(
        description="cancelled_bookings / bookings that reached CONFIRMED, 0.0-1.0; 0 when none reached CONFIRMED."
    )
    revenue: list[MoneyOut] = Field(
        description=(
            "Revenue per currency (confirmed or completed bookings' price minus refunds), one entry per currency, "
            "sorted by currency code."
        )
    )


class PaymentOut(StrictOut):
    """One payment of a booking, from authorization to capture and refunds. (reserva.payments.v1.Payment)"""

    id: str = Field(description="Identifier, a UUID.")
    booking_id: str = Field(description="UUID of the booking paid for.")
    user_id: str = Field(description="UUID of the paying user.")
    kind: PaymentKind = Field(description="What the payment covers.")
    amount: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Requested amount, `amount_minor` > 0.")
    authorized_amount: MoneyOut | SkipJsonSchema[None] = Field(
        default=None, description="Amount currently authorized and not yet captured, voided or released."
    )
    captured_amount: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Total captured.")
    refunded_amount: MoneyOut | SkipJsonSchema[None] = Field(
        default=None, description="Total refunded, <= `captured_amount`."
    )
    status: PaymentStatus = Field(description="Current status.")
    failure_reason: str = Field(
        description=(
            'Machine-readable lower_snake_case reason when FAILED, for example "card_declined", '
            '"insufficient_funds", "expired_card", "provider_error".'
        )
    )
    provider_reference: str = Field(description="The provider's id for this payment (for example a PaymentIntent id).")
    authorization_expire_time: Timestamp | SkipJsonSchema[None] = Field(
        default=None, description="When an AUTHORIZED payment's authorization lapses at the provider; unset otherwise."
    )
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")
    update_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Last modification time.")


class RefundOut(StrictOut):
    """A refund of (part of) a captured payment. (reserva.payments.v1.Refund)"""

    id: str = Field(description="Identifier, a UUID.")
    payment_id: str = Field(description="UUID of the refunded payment.")
    amount: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Refunded amount, `amount_minor` > 0.")
    reason: str = Field(description="Reason given, at most 500 characters.")
    status: RefundStatus = Field(description="Current status.")
    provider_reference: str = Field(description="The provider's refund id.")
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")


class LedgerEntryOut(StrictOut):
    """One append-only movement of money for a payment. (reserva.payments.v1.LedgerEntry)"""

    id: str = Field(description="Identifier, a UUID.")
    payment_id: str = Field(description="UUID of the payment.")
    kind: LedgerEntryKind = Field(description="Kind of movement.")
    amount: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Amount moved, `amount_minor` > 0.")
    refund_id: str = Field(description="UUID of the refund for REFUND entries; empty otherwise.")
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="When the movement was recorded.")


class CurrencyRevenueOut(StrictOut):
    """Revenue of one currency. (reserva.payments.v1.CurrencyRevenue)"""

    currency_code: str = Field(description="ISO 4217 code.")
    captured: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Sum of CAPTURE entries.")
    refunded: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="Sum of REFUND entries.")
    net: MoneyOut | SkipJsonSchema[None] = Field(default=None, description="captured - refunded; may be negative.")
    payment_count: int = Field(description="Distinct payments with a capture in the range.")


class DailyRevenueOut(StrictOut):
    """Revenue of one currency on one day. (reserva.payments.v1.DailyRevenue)"""

    date: DateOut | SkipJsonSchema[None] = Field(default=None, description="Local date in the request's time zone.")
    revenue: CurrencyRevenueOut | SkipJsonSchema[None] = Field(
        default=None, description="Revenue of that day; one entry per currency."
    )


class RevenueStatsOut(StrictOut):
    """Revenue over a time range. (reserva.payments.v1.RevenueStats)"""

    totals: list[CurrencyRevenueOut] = Field(description="Totals per currency, sorted by currency code.")
    daily: list[DailyRevenueOut] = Field(
        description="Per day and currency, by date then currency; days without movements omitted."
    )


class NotificationOut(StrictOut):
    """One message to one user on one channel. (reserva.notifications.v1.Notification)"""

    id: str = Field(description="Identifier, a UUID.")
    user_id: str = Field(description="UUID of the recipient.")
    event_type: str = Field(
        description='The triggering event type, for example "booking.confirmed", or "announcement".'
    )
    channel: Channel = Field(description="Delivery channel.")
    subject: str = Field(description="Rendered subject in the user's locale, at most 200 characters; empty for SMS.")
    body: str = Field(description="Rendered body, plain text, at most 10000 characters.")
    status: NotificationStatus = Field(description="Delivery status.")
    attempts: int = Field(description="Delivery attempts made, 0-10.")
    failure_reason: str = Field(
        description=(
            'Last failure, machine-readable lower_snake_case, for example "smtp_rejected", "webhook_timeout"; empty'
            " if none."
        )
    )
    read: bool = Field(description="True once marked read with MarkNotificationsRead.")
    create_time: Timestamp | SkipJsonSchema[None] = Field(default=None, description="Creation time.")
    send_time: Timestamp | SkipJsonSchema[None] = Field(
        default=None,
        description="When sent (SENT), or when the next attempt is due (QUEUED, DEFERRED); unset otherwise.",
    )


class ChannelPreferenceOut(StrictOut):
    """Whether one event type is delivered on one channel. (reserva.notifications.v1.ChannelPreference)"""

    event_type: str = Field(description='Event type, for example "booking.confirmed", or "*" for all.')
    channel: Channel = Field(description="Channel (CHANNEL_IN_APP cannot be disabled).")
    enabled: bool = Field(description="Deliver (true) or not (false).")


class PreferencesOut(StrictOut):
    """A user's notification settings. (reserva.notifications.v1.Preferences)"""

    user_id: str = Field(description="UUID of the user.")
    email: str = Field(description="E-mail address (RFC 5322 addr-spec), at most 254 characters.")
    phone: str = Field(description='Phone number in E.164 form, for example "+33612345678".')
    webhook_url: str = Field(description="HTTPS URL of a public host, at most 2048 characters.")
    webhook_secret: str = Field(max_length=0, description="Never returned: always empty (see `webhook_secret_set`).")
    webhook_secret_set: bool = Field(description="True if a webhook secret is stored.")
    locale: str = Field(description='BCP 47 language tag, for example "fr-FR".')
    time_zone: str = Field(description="IANA time zone for quiet hours and rendered times.")
    quiet_hours_start: LocalTimeOut | SkipJsonSchema[None] = Field(
        default=None,
        description="Start of quiet hours in `time_zone`; SMS and e-mail are DEFERRED until `quiet_hours_end`.",
    )
    quiet_hours_end: LocalTimeOut | SkipJsonSchema[None] = Field(
        default=None, description="End of quiet hours; set if and only if the start is set."
    )
    channel_preferences: list[ChannelPreferenceOut] = Field(
        description="Per event type and channel switches, at most 200."
    )
    update_time: Timestamp | SkipJsonSchema[None] = Field(
        default=None, description="Last modification time; unset if never saved."
    )
    etag: str = Field(description="Opaque version tag, changed on every modification.")


# --- gateway answers built around the messages -------------------------------------------------


class PlaceRefOut(StrictOut):
    """The few place fields embedded in booking answers."""

    id: str
    title: str
    city: str
    time_zone: str


class BookingDetailsOut(BookingOut):
    """A booking with a summary of its place (null when the place could not be read)."""

    place: PlaceRefOut | None


class PlacePageOut(StrictOut):
    places: list[PlaceOut]
    next_page_token: PageToken


class FreeSlotPageOut(StrictOut):
    slots: list[FreeSlotOut]
    next_page_token: PageToken


class CalendarPageOut(StrictOut):
    entries: list[CalendarEntryOut]
    next_page_token: PageToken


class CalendarFeedLinkOut(StrictOut):
    url: str = Field(
        description="The place's iCalendar feed for calendar apps, its secret included: anyone with this URL "
        "can read the calendar until the link is replaced or removed. Shown once."
    )


class SearchPageOut(StrictOut):
    results: list[PlaceAvailabilityOut]
    next_page_token: PageToken


class BookingPageOut(StrictOut):
    bookings: list[BookingDetailsOut]
    next_page_token: PageToken


class PaymentPageOut(StrictOut):
    payments: list[PaymentOut]
    next_page_token: PageToken


class LedgerPageOut(StrictOut):
    entries: list[LedgerEntryOut]
    next_page_token: PageToken


class RefundResultOut(StrictOut):
    """The refund and the refunded payment as it is after it."""

    refund: RefundOut
    payment: PaymentOut


class ReviewPageOut(StrictOut):
    reviews: list[ReviewOut]
    next_page_token: PageToken


class NotificationPageOut(StrictOut):
    notifications: list[NotificationOut]
    unread_count: int = Field(description="The user's unread notifications in all (not only this page).")
    next_page_token: PageToken


class MarkReadOut(StrictOut):
    marked_count: int = Field(description="Notifications that were unread and are now read.")


class DashboardOut(StrictOut):
    """Dashboard figures for a date range: bookings per day and status, cancellation rate, revenue."""

    start_time: Timestamp
    end_time: Timestamp
    time_zone: str = Field(description="IANA time zone the days are counted in.")
    bookings_per_day: list[DailyBookingCountOut]
    total_bookings: int
    cancelled_bookings: int
    cancellation_rate: float = Field(description="Cancelled / bookings that reached CONFIRMED, 0.0-1.0.")
    revenue: list[CurrencyRevenueOut] = Field(description="Captured, refunded and net revenue per currency.")


class LivenessOut(StrictOut):
    status: Literal["ok"]


# --- the operator dashboard (gateway.service_layer.ops.build_overview) -------------------------


class SessionOut(StrictOut):
    """One database session (pg_stat_activity with its locks); ages in seconds."""

    pid: int
    usename: str | None
    application_name: str
    state: str | None
    xact_age_s: float | None
    query_age_s: float | None
    state_age_s: float | None
    locks: int
    waiting_for: str | None
    blocked_by: list[int] = Field(description="Pids of the sessions it waits for.")
    query: str


class ForeignSessionOut(StrictOut):
    """A blocker in another database of the cluster: only its pid is known."""

    pid: int
    application_name: str
    state: None
    query: str


class BlockedSessionOut(SessionOut):
    blockers: list[SessionOut | ForeignSessionOut]


class LockTableOut(StrictOut):
    """The shared lock table of the cluster: its size and how much of it is taken."""

    max_locks_per_transaction: int
    max_connections: int
    max_prepared_transactions: int
    fast_path_locks: int
    shared_table_locks: int
    capacity: int
    usage_ratio: float
    near_exhaustion: bool


class ApplicationLocksOut(StrictOut):
    """Locks held by the sessions of one application (service)."""

    application_name: str | SkipJsonSchema[None] = Field(default=None, description="Absent when it has no session.")
    backends: int
    locks: int
    fast_path_locks: int
    slow_path_locks: int
    max_locks_per_backend: int
    waiting_backends: int


class OperationLocksOut(StrictOut):
    """The lock probe's figures of one operation."""

    operation: str
    kind: str
    transactions: int
    max_locks: int
    max_relation_locks: int
    max_advisory_locks: int
    last_locks: int


class LockBudgetOut(StrictOut):
    read: int
    write_relations: int
    write_advisory: int


class LockProbeOut(StrictOut):
    transactions: int
    max_locks: int
    max_relation_locks: int
    near_budget: int
    over_budget: int
    budget: LockBudgetOut | None
    operations: list[OperationLocksOut] = Field(description="The operations that took the most locks.")


class OutboxOut(StrictOut):
    pending: int
    oldest_age_s: float | None


class CacheOut(StrictOut):
    hits: int
    misses: int
    hit_rate: float | None
    recent_hit_rate: float | None


class ServiceFiguresOut(StrictOut):
    """What one service's processes published, with its live locks."""

    service: str
    instances: int
    snapshot_age_s: float | None
    live_locks: ApplicationLocksOut
    lock_probe: LockProbeOut
    outbox: OutboxOut | None
    cache: CacheOut


class OpsTotalsOut(StrictOut):
    sessions: int
    locks: int
    blocked_sessions: int
    outbox_pending: int
    outbox_oldest_age_s: float | None
    cache_hit_rate: float | None


class RecentSlowStatementOut(StrictOut):
    service: str
    instance: str | None
    duration_ms: float
    statement: str
    at: float = Field(description="Unix time.")


class SlowStatementsOut(StrictOut):
    threshold_ms: int
    running: list[SessionOut]
    recent: list[RecentSlowStatementOut]


class OpsOverviewOut(StrictOut):
    """Everything the operator dashboard shows, read now."""

    database: str
    full_visibility: bool = Field(description="False when the gateway's role cannot see other roles' sessions.")
    snapshots_available: bool = Field(description="False when Redis did not answer: live figures only.")
    lock_table: LockTableOut
    totals: OpsTotalsOut
    lock_usage: list[ApplicationLocksOut]
    services: list[ServiceFiguresOut]
    blocked_sessions: list[BlockedSessionOut]
    idle_in_transaction: list[SessionOut]
    long_transactions: list[SessionOut]
    slow_statements: SlowStatementsOut
