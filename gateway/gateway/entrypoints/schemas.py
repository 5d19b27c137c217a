"""Request and response bodies of the REST API. Requests are strict (unknown fields, wrong types and
out-of-range values are 422 with the offending field named); their shape mirrors the protos' JSON
mapping (snake_case, RFC 3339 timestamps, durations like "1800s", money in minor units)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Canonical (lower-case) form before anything reaches a service.
Uuid = Annotated[
    str,
    Field(pattern=_UUID, examples=["3fa85f64-5717-4562-b3fc-2c963f66afa6"]),
    AfterValidator(lambda value: str(uuid.UUID(value))),
]
Duration = Annotated[str, Field(pattern=r"^[0-9]{1,9}(\.[0-9]{1,9})?s$", examples=["1800s"])]
Role = Literal["client", "host", "agent"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable reason, e.g. SLOT_UNAVAILABLE.")
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    conflicting_ranges: list[dict[str, Any]] | None = None


# --- identity -----------------------------------------------------------------------------------


class RegisterIn(Strict):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=8, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    locale: str = Field(default="en", min_length=2, max_length=16)
    roles: list[Literal["client", "host"]] = Field(default_factory=lambda: ["client"], min_length=1, max_length=2)


class CreateUserIn(RegisterIn):
    roles: list[Role] = Field(default_factory=lambda: ["client"], min_length=1, max_length=3)


class TokenIn(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=128)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(Strict):
    refresh_token: str | None = Field(default=None, min_length=1, max_length=200)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class ProfilePatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40, description="Empty string removes the phone.")
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)
    locale: str | None = Field(default=None, min_length=2, max_length=16)
    password: str | None = Field(default=None, min_length=8, max_length=128)


class AdminUserPatch(ProfilePatch):
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=3)
    active: bool | None = None


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    phone: str | None
    time_zone: str
    locale: str
    roles: list[str]
    active: bool
    create_time: datetime | None
    update_time: datetime | None


class UserPage(BaseModel):
    users: list[UserOut]
    next_page_token: str | None


class BulkIdsIn(Strict):
    user_ids: list[Uuid] = Field(min_length=1, max_length=5000)


class BulkRolesIn(BulkIdsIn):
    roles: list[Role] = Field(min_length=1, max_length=3)


class BulkOut(BaseModel):
    requested: int
    changed: int
    batches: int


class DayCount(BaseModel):
    date: str
    count: int


class UserStatsOut(BaseModel):
    total: int
    active: int
    by_role: dict[str, int]
    signups_per_day: list[DayCount]


# --- shared value types -------------------------------------------------------------------------


class MoneyIn(Strict):
    amount_minor: int = Field(ge=0, le=10**13)
    currency_code: str = Field(pattern=r"^[A-Z]{3}$")


class TimeRangeIn(Strict):
    start_time: AwareDatetime
    end_time: AwareDatetime


class LocalTimeIn(Strict):
    hours: int = Field(ge=0, le=24)
    minutes: int = Field(default=0, ge=0, le=59)


class DateIn(Strict):
    year: int = Field(ge=1, le=9999)
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)


# --- places -------------------------------------------------------------------------------------


class OpeningIntervalIn(Strict):
    weekday: int = Field(ge=1, le=7)
    start: LocalTimeIn
    end: LocalTimeIn


class ScheduleIn(Strict):
    opening_hours: list[OpeningIntervalIn] = Field(default_factory=list, max_length=70)
    first_bookable_date: DateIn | None = None
    last_bookable_date: DateIn | None = None
    blocked_dates: list[DateIn] = Field(default_factory=list, max_length=1000)
    blocked_weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=list, max_length=7)
    minimum_notice: Duration | None = None
    maximum_advance: Duration | None = None
    slot_granularity: Duration | None = None
    minimum_duration: Duration | None = None
    maximum_duration: Duration | None = None
    buffer_before: Duration | None = None
    buffer_after: Duration | None = None


class DepositPolicyIn(Strict):
    kind: Literal["FULL_PREPAYMENT", "DEPOSIT_PERCENT", "DEPOSIT_FIXED"]
    percent: int = Field(default=0, ge=0, le=100)
    fixed_amount: MoneyIn | None = None


class CancellationPolicyIn(Strict):
    full_refund_notice: Duration | None = None
    partial_refund_percent: int = Field(default=0, ge=0, le=100)


class PlaceFields(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    city: str | None = Field(default=None, min_length=1, max_length=100)
    address: str | None = Field(default=None, min_length=1, max_length=300)
    capacity: int | None = Field(default=None, ge=1, le=10000)
    unit_count: int | None = Field(default=None, ge=1, le=1000)
    price_per_hour: MoneyIn | None = None
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)
    booking_mode: Literal["INSTANT", "REQUEST"] | None = None
    photo_urls: list[Annotated[str, Field(max_length=2048)]] | None = Field(default=None, max_length=20)
    deposit_policy: DepositPolicyIn | None = None
    cancellation_policy: CancellationPolicyIn | None = None
    schedule: ScheduleIn | None = None


class PlaceIn(PlaceFields):
    title: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    address: str = Field(min_length=1, max_length=300)
    capacity: int = Field(ge=1, le=10000)
    price_per_hour: MoneyIn
    time_zone: str = Field(min_length=1, max_length=64)
    booking_mode: Literal["INSTANT", "REQUEST"]
    schedule: ScheduleIn


class PlacePatch(PlaceFields):
    """Only the fields present are changed (a field set to null is ignored)."""

    active: bool | None = Field(default=None, description="Agents only: reactivate a deleted place.")


class BlockIn(Strict):
    ranges: list[TimeRangeIn] = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=500)


# --- bookings -----------------------------------------------------------------------------------


class BookingIn(Strict):
    place_id: Uuid
    ranges: list[TimeRangeIn] = Field(min_length=1, max_length=60)
    guests: int = Field(ge=1, le=10000)
    units: int = Field(default=1, ge=1, le=1000)
    payment_method_token: str = Field(default="", max_length=255)
    note: str = Field(default="", max_length=1000)
    waitlist_entry_id: Uuid | None = Field(
        default=None, description="The caller's waitlist entry whose offer this booking takes (its held range)"
    )


class ReasonIn(Strict):
    reason: str = Field(default="", max_length=500)


class RescheduleIn(Strict):
    ranges: list[TimeRangeIn] = Field(min_length=1, max_length=60)


class ConfirmIn(Strict):
    payment_method_token: str = Field(min_length=1, max_length=255)


class RefundIn(Strict):
    amount: MoneyIn | None = None
    reason: str = Field(default="", max_length=500)


# --- notifications, reviews ---------------------------------------------------------------------


class MarkReadIn(Strict):
    ids: list[Uuid] = Field(default_factory=list, max_length=500)


class ChannelPreferenceIn(Strict):
    event_type: str = Field(min_length=1, max_length=100)
    channel: Literal["CHANNEL_EMAIL", "CHANNEL_SMS", "CHANNEL_WEBHOOK", "CHANNEL_IN_APP"]
    enabled: bool


class PreferencesPatch(Strict):
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    webhook_url: str | None = Field(
        default=None,
        max_length=2048,
        description="HTTPS URL of a public host (not a loopback, private or link-local address), signed with "
        "`webhook_secret`; empty to remove it.",
    )
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=128)
    locale: str | None = Field(default=None, max_length=35)
    time_zone: str | None = Field(default=None, max_length=64)
    quiet_hours_start: LocalTimeIn | None = None
    quiet_hours_end: LocalTimeIn | None = None
    channel_preferences: list[ChannelPreferenceIn] | None = Field(default=None, max_length=200)


class ReviewIn(Strict):
    booking_id: Uuid
    rating: int = Field(ge=1, le=5)
    text: str = Field(default="", max_length=5000)


class ReplyIn(Strict):
    text: str = Field(min_length=1, max_length=2000)


class HideIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class Health(BaseModel):
    status: Literal["SERVING", "NOT_SERVING"]
    services: dict[str, Literal["SERVING", "NOT_SERVING"]]
