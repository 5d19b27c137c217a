"""Request and response bodies of the booking workflows beyond the basic lifecycle (recurring series,
waitlist, no-show and completion) and of the agents' notification tools (announcements, dead
letters). Requests are strict like every other request body; responses mirror the protos' JSON mapping
(snake_case, RFC 3339 timestamps, enum names, money in minor units, bytes as base64). Enum values are
taken from the protos, so the OpenAPI document follows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from gateway.entrypoints.schemas import Role, Strict, TimeRangeIn, Uuid
from reserva.booking.v1 import booking_pb2 as bk
from reserva.notifications.v1 import notifications_pb2 as nt


def _names(enum, *, skip_unspecified: bool = True):
    """A Literal of a proto enum's value names (the JSON mapping prints enums by name)."""
    names = tuple(v.name for v in enum.DESCRIPTOR.values if not (skip_unspecified and v.name.endswith("_UNSPECIFIED")))
    return Literal[names]  # type: ignore[valid-type]


# The service may report an unset status as its _UNSPECIFIED name; keep those in the output types.
BookingStatus = _names(bk.Booking.Status, skip_unspecified=False)
SagaState = _names(bk.Booking.SagaState, skip_unspecified=False)
PaymentStatus = _names(bk.Booking.PaymentStatus, skip_unspecified=False)
WaitlistState = _names(bk.WaitlistEntry.State, skip_unspecified=False)
WaitlistStateFilter = _names(bk.WaitlistEntry.State)
AnnouncementState = _names(nt.Announcement.State, skip_unspecified=False)
DeadLetterState = _names(nt.DeadLetter.State, skip_unspecified=False)
DeadLetterStateFilter = _names(nt.DeadLetter.State)


# --- requests -----------------------------------------------------------------------------------


class NoShowIn(Strict):
    reason: str = Field(default="", max_length=500, description="Note kept in the booking's history.")


class RecurrenceIn(Strict):
    """Exactly one of `count` and `until`."""

    frequency: Literal["DAILY", "WEEKLY"]
    count: int | None = Field(default=None, ge=2, le=52, description="Occurrences including the first.")
    until: AwareDatetime | None = Field(default=None, description="Last allowed occurrence start (inclusive).")


class SeriesIn(Strict):
    place_id: Uuid
    first_occurrence: TimeRangeIn
    recurrence: RecurrenceIn
    guests: int = Field(ge=1, le=10000)
    units: int = Field(default=1, ge=1, le=1000)
    payment_method_token: str = Field(min_length=1, max_length=255, description="Each occurrence is paid.")
    note: str = Field(default="", max_length=1000)
    allow_partial: bool = Field(
        default=False, description="Book the free occurrences and report the taken ones in `conflicts`."
    )


class WaitlistIn(Strict):
    place_id: Uuid
    range: TimeRangeIn
    guests: int = Field(ge=1, le=10000)
    units: int = Field(default=1, ge=1, le=1000)


class AnnouncementFilterIn(Strict):
    """Empty lists match everyone; both set means users in `user_ids` having one of `roles`."""

    roles: list[Role] = Field(default_factory=list, max_length=3)
    user_ids: list[Uuid] = Field(default_factory=list, max_length=10000)


class AnnouncementIn(Strict):
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10000)
    filter: AnnouncementFilterIn | None = Field(default=None, description="Audience; unset: every user.")


# --- responses ----------------------------------------------------------------------------------


class MoneyOut(BaseModel):
    amount_minor: int
    currency_code: str


class TimeRangeOut(BaseModel):
    start_time: datetime | None = None
    end_time: datetime | None = None


class StatusChangeOut(BaseModel):
    from_status: BookingStatus
    to_status: BookingStatus
    actor_id: str
    reason: str
    change_time: datetime | None = None


class CancellationOut(BaseModel):
    actor_id: str
    by_host: bool
    reason: str
    refund_percent: int
    refund_amount: MoneyOut | None = None
    refund_id: str
    cancel_time: datetime | None = None


class BookingOut(BaseModel):
    id: str
    client_id: str
    host_id: str
    place_id: str
    ranges: list[TimeRangeOut]
    guests: int
    units: int
    price: MoneyOut | None = None
    deposit_amount: MoneyOut | None = None
    status: BookingStatus
    saga_state: SagaState
    hold_id: str
    payment_id: str
    payment_status: PaymentStatus
    history: list[StatusChangeOut] = Field(default_factory=list)
    cancellation: CancellationOut | None = None
    note: str = ""
    series_id: str
    create_time: datetime | None = None
    update_time: datetime | None = None
    expire_time: datetime | None = None
    etag: str


class SeriesOut(BaseModel):
    series_id: str
    booked: list[BookingOut] = Field(description="One booking per booked occurrence, by start.")
    conflicts: list[TimeRangeOut] = Field(description="Occurrences not booked (only with allow_partial).")


class WaitlistEntryOut(BaseModel):
    id: str
    place_id: str
    client_id: str
    range: TimeRangeOut | None = None
    guests: int
    units: int
    state: WaitlistState
    position: int = Field(description="1-based among WAITING entries for overlapping ranges; 0 when not WAITING.")
    offer_expire_time: datetime | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class WaitlistPage(BaseModel):
    entries: list[WaitlistEntryOut]
    next_page_token: str | None


class AnnouncementFilterOut(BaseModel):
    roles: list[Role]
    user_ids: list[str]


class AnnouncementOut(BaseModel):
    id: str
    subject: str
    body: str
    filter: AnnouncementFilterOut
    state: AnnouncementState
    sent_count: int
    failed_count: int
    total: int = Field(description="Recipients matched; 0 while PENDING.")
    created_by: str
    create_time: datetime | None = None
    complete_time: datetime | None = None


class DeadLetterOut(BaseModel):
    id: str
    stream: str
    consumer_group: str
    event_id: str
    event_type: str
    envelope: str = Field(description="The serialized reserva.events.v1.EventEnvelope, base64.")
    error: str
    attempts: int
    state: DeadLetterState
    create_time: datetime | None = None
    replay_time: datetime | None = None


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    next_page_token: str | None
