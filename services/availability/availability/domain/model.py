"""Places, schedules and holds as plain dataclasses, with the validation rules of their fields."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from availability.domain.errors import invalid
from kit.timezones import iana_zone

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)

# ISO 4217 codes in circulation.
CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of a known IANA name; INVALID_ARGUMENT otherwise."""
    found = iana_zone(name)
    if found is None:
        raise invalid(
            f"unknown time zone {name[:64]!r}; use an IANA name like 'Europe/Paris'", "INVALID_TIME_ZONE", "time_zone"
        )
    return found


@dataclass(frozen=True)
class Money:
    amount_minor: int
    currency_code: str

    def validate(self, field_name: str, positive: bool = False) -> None:
        if self.currency_code not in CURRENCIES:
            raise invalid(
                f"{field_name}: unknown currency {self.currency_code!r} (expected an ISO 4217 code like 'EUR')",
                "INVALID_CURRENCY",
                field_name,
            )
        if self.amount_minor < 0 or (positive and self.amount_minor == 0):
            raise invalid(f"{field_name}: amount must be {'> 0' if positive else '>= 0'}", "INVALID_AMOUNT", field_name)


@dataclass(frozen=True, order=True)
class TimeRange:
    """Half-open [start, end), timezone-aware."""

    start: datetime
    end: datetime

    @classmethod
    def checked(cls, start: datetime, end: datetime, field_name: str = "range") -> TimeRange:
        if end <= start:
            raise invalid(f"{field_name}: end must be after start", "INVALID_TIME_RANGE", field_name)
        return cls(start, end)

    def overlaps(self, other: TimeRange) -> bool:
        return self.start < other.end and other.start < self.end

    def widened(self, before: timedelta, after: timedelta) -> TimeRange:
        return TimeRange(self.start - before, self.end + after)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def sorted_disjoint(ranges: list[TimeRange], field_name: str, maximum: int) -> list[TimeRange]:
    """Ranges sorted by start; INVALID_ARGUMENT when empty, too many or overlapping."""
    if not ranges:
        raise invalid(f"{field_name}: at least one range is required", "INVALID_TIME_RANGE", field_name)
    if len(ranges) > maximum:
        raise invalid(f"{field_name}: at most {maximum} ranges", "INVALID_TIME_RANGE", field_name)
    ordered = sorted(ranges)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.overlaps(b):
            raise invalid(f"{field_name}: ranges must not overlap each other", "INVALID_TIME_RANGE", field_name)
    return ordered


@dataclass(frozen=True)
class OpeningInterval:
    """[start_minute, end_minute) of local time on an ISO weekday; end 1440 is midnight."""

    weekday: int
    start_minute: int
    end_minute: int


@dataclass
class Schedule:
    opening_hours: list[OpeningInterval] = field(default_factory=list)
    first_bookable_date: date | None = None
    last_bookable_date: date | None = None
    blocked_dates: list[date] = field(default_factory=list)
    blocked_weekdays: list[int] = field(default_factory=list)
    minimum_notice: timedelta = timedelta(0)
    maximum_advance: timedelta = timedelta(days=365)
    slot_granularity: timedelta = timedelta(minutes=30)
    minimum_duration: timedelta = timedelta(minutes=30)
    maximum_duration: timedelta = timedelta(hours=24)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)

    @classmethod
    def with_defaults(cls, **given) -> Schedule:
        """A schedule where zero durations mean "the documented default"."""
        schedule = cls(**{k: v for k, v in given.items() if v is not None})
        if not schedule.maximum_advance:
            schedule.maximum_advance = timedelta(days=365)
        if not schedule.slot_granularity:
            schedule.slot_granularity = timedelta(minutes=30)
        if not schedule.minimum_duration:
            schedule.minimum_duration = schedule.slot_granularity
        if not schedule.maximum_duration:
            schedule.maximum_duration = timedelta(hours=24)
        return schedule

    def validate(self) -> None:
        f = "schedule"
        if len(self.opening_hours) > 70:
            raise invalid(f"{f}.opening_hours: at most 70 intervals", field=f"{f}.opening_hours")
        for i in self.opening_hours:
            if not 1 <= i.weekday <= 7:
                raise invalid(
                    f"{f}.opening_hours: weekday must be 1 (Monday) to 7 (Sunday)", field=f"{f}.opening_hours"
                )
            if not 0 <= i.start_minute < i.end_minute <= 1440:
                raise invalid(
                    f"{f}.opening_hours: each interval needs 00:00 <= start < end <= 24:00", field=f"{f}.opening_hours"
                )
        by_day = sorted(self.opening_hours, key=lambda i: (i.weekday, i.start_minute))
        for a, b in zip(by_day, by_day[1:], strict=False):
            if a.weekday == b.weekday and b.start_minute < a.end_minute:
                raise invalid(
                    f"{f}.opening_hours: intervals of weekday {a.weekday} overlap", field=f"{f}.opening_hours"
                )
        if self.first_bookable_date and self.last_bookable_date and self.last_bookable_date < self.first_bookable_date:
            raise invalid(
                f"{f}.last_bookable_date must not be before first_bookable_date", field=f"{f}.last_bookable_date"
            )
        if len(self.blocked_dates) > 1000:
            raise invalid(f"{f}.blocked_dates: at most 1000 dates", field=f"{f}.blocked_dates")
        if any(not 1 <= d <= 7 for d in self.blocked_weekdays) or len(set(self.blocked_weekdays)) != len(
            self.blocked_weekdays
        ):
            raise invalid(f"{f}.blocked_weekdays: distinct ISO weekdays 1-7", field=f"{f}.blocked_weekdays")
        self._check_range("minimum_notice", self.minimum_notice, timedelta(0), timedelta(days=365))
        self._check_range("maximum_advance", self.maximum_advance, timedelta(0), timedelta(days=730))
        g = self.slot_granularity
        self._check_range("slot_granularity", g, timedelta(minutes=5), DAY)
        if DAY % g or g % MINUTE:
            raise invalid(f"{f}.slot_granularity must divide 24 hours in whole minutes", field=f"{f}.slot_granularity")
        self._check_range("minimum_duration", self.minimum_duration, g, timedelta(days=31))
        self._check_range("maximum_duration", self.maximum_duration, self.minimum_duration, timedelta(days=31))
        for name in ("minimum_duration", "maximum_duration"):
            if getattr(self, name) % g:
                raise invalid(f"{f}.{name} must be a multiple of slot_granularity", field=f"{f}.{name}")
        self._check_range("buffer_before", self.buffer_before, timedelta(0), DAY)
        self._check_range("buffer_after", self.buffer_after, timedelta(0), DAY)

    @staticmethod
    def _check_range(name: str, value: timedelta, low: timedelta, high: timedelta) -> None:
        if not low <= value <= high:
            raise invalid(f"schedule.{name} must be between {low} and {high}, got {value}", field=f"schedule.{name}")

    def to_dict(self) -> dict:
        return {
            "opening_hours": [[i.weekday, i.start_minute, i.end_minute] for i in self.opening_hours],
            "first_bookable_date": self.first_bookable_date.isoformat() if self.first_bookable_date else None,
            "last_bookable_date": self.last_bookable_date.isoformat() if self.last_bookable_date else None,
            "blocked_dates": [d.isoformat() for d in self.blocked_dates],
            "blocked_weekdays": list(self.blocked_weekdays),
            **{
                name: int(getattr(self, name).total_seconds())
                for name in (
                    "minimum_notice",
                    "maximum_advance",
                    "slot_granularity",
                    "minimum_duration",
                    "maximum_duration",
                    "buffer_before",
                    "buffer_after",
                )
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> Schedule:
        def day(v):
            return date.fromisoformat(v) if v else None

        return cls(
            opening_hours=[OpeningInterval(*i) for i in d["opening_hours"]],
            first_bookable_date=day(d["first_bookable_date"]),
            last_bookable_date=day(d["last_bookable_date"]),
            blocked_dates=[date.fromisoformat(v) for v in d["blocked_dates"]],
            blocked_weekdays=list(d["blocked_weekdays"]),
            **{
                k: timedelta(seconds=d[k])
                for k in (
                    "minimum_notice",
                    "maximum_advance",
                    "slot_granularity",
                    "minimum_duration",
                    "maximum_duration",
                    "buffer_before",
                    "buffer_after",
                )
            },
        )


@dataclass
class DepositPolicy:
    kind: str = "FULL_PREPAYMENT"  # FULL_PREPAYMENT | DEPOSIT_PERCENT | DEPOSIT_FIXED
    percent: int = 0
    fixed_amount: Money | None = None

    def validate(self, currency: str) -> None:
        f = "deposit_policy"
        if self.kind == "DEPOSIT_PERCENT":
            if not 1 <= self.percent <= 100 or self.fixed_amount:
                raise invalid(f"{f}: DEPOSIT_PERCENT needs percent 1-100 and no fixed_amount", field=f)
        elif self.kind == "DEPOSIT_FIXED":
            if self.percent or not self.fixed_amount:
                raise invalid(f"{f}: DEPOSIT_FIXED needs fixed_amount and percent 0", field=f)
            self.fixed_amount.validate(f"{f}.fixed_amount", positive=True)
            if self.fixed_amount.currency_code != currency:
                raise invalid(f"{f}.fixed_amount must be in {currency}", "INVALID_CURRENCY", f)
        elif self.percent or self.fixed_amount:
            raise invalid(f"{f}: FULL_PREPAYMENT takes no percent or fixed_amount", field=f)

    def to_dict(self) -> dict:
        fixed = self.fixed_amount
        return {
            "kind": self.kind,
            "percent": self.percent,
            "fixed_amount": [fixed.amount_minor, fixed.currency_code] if fixed else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DepositPolicy:
        fixed = d.get("fixed_amount")
        return cls(d["kind"], d["percent"], Money(*fixed) if fixed else None)


@dataclass
class CancellationPolicy:
    full_refund_notice: timedelta = timedelta(hours=24)
    partial_refund_percent: int = 0

    def validate(self) -> None:
        if not timedelta(0) <= self.full_refund_notice <= timedelta(days=365):
            raise invalid("cancellation_policy.full_refund_notice must be 0-365 days", field="cancellation_policy")
        if not 0 <= self.partial_refund_percent <= 100:
            raise invalid("cancellation_policy.partial_refund_percent must be 0-100", field="cancellation_policy")

    def to_dict(self) -> dict:
        return {
            "full_refund_notice": int(self.full_refund_notice.total_seconds()),
            "partial": self.partial_refund_percent,
        }

    @classmethod
    def from_dict(cls, d: dict) -> CancellationPolicy:
        return cls(timedelta(seconds=d["full_refund_notice"]), d["partial"])


BOOKING_MODES = ("INSTANT", "REQUEST")
_URL = re.compile(r"^https://[^\s]+$")


@dataclass
class Place:
    id: str
    owner_id: str
    title: str
    description: str
    city: str
    address: str
    capacity: int
    unit_count: int
    price_per_hour: Money
    time_zone: str
    booking_mode: str
    photo_urls: list[str] = field(default_factory=list)
    active: bool = True
    rating_sum: int = 0
    rating_count: int = 0
    deposit_policy: DepositPolicy = field(default_factory=DepositPolicy)
    cancellation_policy: CancellationPolicy = field(default_factory=CancellationPolicy)
    schedule: Schedule = field(default_factory=Schedule)
    version: int = 1
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def rating_average(self) -> float:
        return round(self.rating_sum / self.rating_count, 4) if self.rating_count else 0.0

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.time_zone)

    def validate(self) -> None:
        """Every field rule of the proto contract; INVALID_ARGUMENT with the field's name."""
        _length("title", self.title, 1, 200)
        _length("description", self.description, 0, 5000)
        _length("city", self.city, 1, 100)
        _length("address", self.address, 1, 300)
        if not 1 <= self.capacity <= 10000:
            raise invalid("capacity must be 1-10000", field="capacity")
        if not 1 <= self.unit_count <= 1000:
            raise invalid("unit_count must be 1-1000", field="unit_count")
        self.price_per_hour.validate("price_per_hour")
        zone(self.time_zone)
        if self.booking_mode not in BOOKING_MODES:
            raise invalid("booking_mode must be INSTANT or REQUEST", field="booking_mode")
        if len(self.photo_urls) > 20 or any(len(u) > 2048 or not _URL.match(u) for u in self.photo_urls):
            raise invalid("photo_urls: at most 20 https URLs of at most 2048 characters", field="photo_urls")
        self.deposit_policy.validate(self.price_per_hour.currency_code)
        self.cancellation_policy.validate()
        self.schedule.validate()

    def may_be_changed_by(self, user_id: str, privileged: bool) -> bool:
        return privileged or (bool(user_id) and user_id == self.owner_id)

    def apply_rating(self, rating: int, removed: bool) -> None:
        if removed:
            if self.rating_count > 0:
                self.rating_count -= 1
                self.rating_sum = max(0, self.rating_sum - rating)
        else:
            self.rating_count += 1
            self.rating_sum += rating


def _length(name: str, value: str, low: int, high: int) -> None:
    if not low <= len(value) <= high or (low and not value.strip()):
        raise invalid(f"{name} must be {low}-{high} characters", field=name)


class HoldState(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"
    ACTIVE = "active"  # blocks
    REMOVED = "removed"  # blocks


@dataclass
class Hold:
    """A hold (kind 'hold') or a host's block (kind 'block'): ranges of one place for `units` units."""

    id: str
    request_id: str
    fingerprint: str
    kind: str
    place_id: str
    booking_id: str
    holder_id: str
    ranges: list[TimeRange]
    units: int
    state: HoldState
    expires_at: datetime | None
    reason: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None

    def effective_state(self, now: datetime) -> HoldState:
        """A HELD hold past its expiry is EXPIRED even before the sweeper flips it."""
        if self.state is HoldState.HELD and self.expires_at is not None and self.expires_at <= now:
            return HoldState.EXPIRED
        return self.state


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)
