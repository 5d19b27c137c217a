"""Protos <-> domain. Malformed fields become INVALID_ARGUMENT with the field's name; nothing here
decides business rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from availability.domain.errors import invalid
from availability.domain.model import (
    CancellationPolicy,
    DepositPolicy,
    Hold,
    HoldState,
    Money,
    OpeningInterval,
    Place,
    Schedule,
    TimeRange,
)
from kit import prototime
from reserva.availability.v1 import availability_pb2 as pb
from reserva.type.v1 import types_pb2

MAX_TIMESTAMP = datetime(9999, 12, 31, tzinfo=UTC)
# Times a caller may give: far wider than any booking, far enough from the ends of the calendar.
EARLIEST_TIME, LATEST_TIME = datetime(1971, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


ts = prototime.optional_timestamp


def from_ts(message: timestamp_pb2.Timestamp, field: str) -> datetime:
    if message.seconds == 0 and message.nanos == 0:
        raise invalid(f"{field} is required", "INVALID_TIME_RANGE", field)
    try:
        value = prototime.to_datetime(message)
    except (ValueError, OverflowError) as error:
        raise invalid(f"{field} is not a valid timestamp", "INVALID_TIME_RANGE", field) from error
    if not EARLIEST_TIME <= value < LATEST_TIME:
        # The calendar works in local days around a time (a day before, two after, in any zone):
        # at the ends of the datetime range that arithmetic overflows.
        raise invalid(
            f"{field} must fall between {EARLIEST_TIME.year} and {LATEST_TIME.year}", "INVALID_TIME_RANGE", field
        )
    return value


def range_from_proto(message: types_pb2.TimeRange, field: str) -> TimeRange:
    return TimeRange.checked(
        from_ts(message.start_time, f"{field}.start_time"), from_ts(message.end_time, f"{field}.end_time"), field
    )


def range_to_proto(r: TimeRange) -> types_pb2.TimeRange:
    return types_pb2.TimeRange(start_time=ts(r.start), end_time=ts(r.end))


def duration_from(message: duration_pb2.Duration) -> timedelta:
    return timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)


def duration_to(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def date_from(message: types_pb2.Date, field: str) -> date:
    try:
        return date(message.year, message.month, message.day)
    except ValueError as error:
        raise invalid(f"{field} is not a valid date", "INVALID_DATE", field) from error


def date_to(value: date) -> types_pb2.Date:
    return types_pb2.Date(year=value.year, month=value.month, day=value.day)


def money_from(message: types_pb2.Money) -> Money:
    return Money(message.amount_minor, message.currency_code)


def money_to(value: Money) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=value.amount_minor, currency_code=value.currency_code)


def _minute(t: types_pb2.LocalTime, field: str) -> int:
    if not (0 <= t.hours <= 24 and 0 <= t.minutes <= 59) or (t.hours == 24 and t.minutes):
        raise invalid(f"{field} must be a time between 00:00 and 24:00", field=field)
    return t.hours * 60 + t.minutes


def schedule_from(message: pb.Schedule) -> Schedule:
    def optional_date(name: str) -> date | None:
        return date_from(getattr(message, name), f"schedule.{name}") if message.HasField(name) else None

    return Schedule.with_defaults(
        opening_hours=[
            OpeningInterval(
                i.weekday,
                _minute(i.start, "schedule.opening_hours.start"),
                _minute(i.end, "schedule.opening_hours.end"),
            )
            for i in message.opening_hours
        ],
        first_bookable_date=optional_date("first_bookable_date"),
        last_bookable_date=optional_date("last_bookable_date"),
        blocked_dates=[date_from(d, "schedule.blocked_dates") for d in message.blocked_dates],
        blocked_weekdays=list(message.blocked_weekdays),
        minimum_notice=duration_from(message.minimum_notice),
        maximum_advance=duration_from(message.maximum_advance),
        slot_granularity=duration_from(message.slot_granularity),
        minimum_duration=duration_from(message.minimum_duration),
        maximum_duration=duration_from(message.maximum_duration),
        buffer_before=duration_from(message.buffer_before),
        buffer_after=duration_from(message.buffer_after),
    )


def schedule_to(s: Schedule) -> pb.Schedule:
    message = pb.Schedule(
        opening_hours=[
            pb.OpeningInterval(
                weekday=i.weekday,
                start=types_pb2.LocalTime(hours=i.start_minute // 60, minutes=i.start_minute % 60),
                end=types_pb2.LocalTime(hours=i.end_minute // 60, minutes=i.end_minute % 60),
            )
            for i in s.opening_hours
        ],
        blocked_dates=[date_to(d) for d in s.blocked_dates],
        blocked_weekdays=s.blocked_weekdays,
        minimum_notice=duration_to(s.minimum_notice),
        maximum_advance=duration_to(s.maximum_advance),
        slot_granularity=duration_to(s.slot_granularity),
        minimum_duration=duration_to(s.minimum_duration),
        maximum_duration=duration_to(s.maximum_duration),
        buffer_before=duration_to(s.buffer_before),
        buffer_after=duration_to(s.buffer_after),
    )
    if s.first_bookable_date:
        message.first_bookable_date.CopyFrom(date_to(s.first_bookable_date))
    if s.last_bookable_date:
        message.last_bookable_date.CopyFrom(date_to(s.last_bookable_date))
    return message


_DEPOSIT_KINDS = {0: "FULL_PREPAYMENT", 1: "FULL_PREPAYMENT", 2: "DEPOSIT_PERCENT", 3: "DEPOSIT_FIXED"}


def deposit_from(message: pb.DepositPolicy) -> DepositPolicy:
    fixed = money_from(message.fixed_amount) if message.HasField("fixed_amount") else None
    return DepositPolicy(_DEPOSIT_KINDS.get(message.kind, "FULL_PREPAYMENT"), message.percent, fixed)


def deposit_to(d: DepositPolicy) -> pb.DepositPolicy:
    message = pb.DepositPolicy(kind=pb.DepositPolicy.Kind.Value(d.kind), percent=d.percent)
    if d.fixed_amount:
        message.fixed_amount.CopyFrom(money_to(d.fixed_amount))
    return message


def cancellation_from(message: pb.CancellationPolicy) -> CancellationPolicy:
    return CancellationPolicy(duration_from(message.full_refund_notice), message.partial_refund_percent)


def cancellation_to(c: CancellationPolicy) -> pb.CancellationPolicy:
    return pb.CancellationPolicy(
        full_refund_notice=duration_to(c.full_refund_notice), partial_refund_percent=c.partial_refund_percent
    )


def booking_mode_from(value: int) -> str:
    return {1: "INSTANT", 2: "REQUEST"}.get(value, "UNSPECIFIED")


def place_from(message: pb.Place) -> Place:
    """A new place from CreatePlace's message (output-only fields ignored, defaults applied)."""
    if not message.HasField("price_per_hour"):
        raise invalid("price_per_hour is required", field="price_per_hour")
    if not message.HasField("schedule"):
        raise invalid("schedule is required", field="schedule")
    return Place(
        id="",
        owner_id="",
        title=message.title,
        description=message.description,
        city=message.city,
        address=message.address,
        capacity=message.capacity,
        unit_count=message.unit_count or 1,
        price_per_hour=money_from(message.price_per_hour),
        time_zone=message.time_zone,
        booking_mode=booking_mode_from(message.booking_mode),
        photo_urls=list(message.photo_urls),
        deposit_policy=deposit_from(message.deposit_policy) if message.HasField("deposit_policy") else DepositPolicy(),
        cancellation_policy=cancellation_from(message.cancellation_policy)
        if message.HasField("cancellation_policy")
        else CancellationPolicy(),
        schedule=schedule_from(message.schedule),
    )


def place_to(p: Place) -> pb.Place:
    return pb.Place(
        id=p.id,
        owner_id=p.owner_id,
        title=p.title,
        description=p.description,
        city=p.city,
        address=p.address,
        capacity=p.capacity,
        unit_count=p.unit_count,
        price_per_hour=money_to(p.price_per_hour),
        time_zone=p.time_zone,
        booking_mode=pb.Place.BookingMode.Value(p.booking_mode),
        photo_urls=p.photo_urls,
        active=p.active,
        rating_average=p.rating_average,
        rating_count=p.rating_count,
        deposit_policy=deposit_to(p.deposit_policy),
        cancellation_policy=cancellation_to(p.cancellation_policy),
        schedule=schedule_to(p.schedule),
        create_time=ts(p.create_time),
        update_time=ts(p.update_time),
        etag=p.etag,
    )


_HOLD_STATES = {
    HoldState.HELD: pb.Hold.HELD,
    HoldState.CONFIRMED: pb.Hold.CONFIRMED,
    HoldState.RELEASED: pb.Hold.RELEASED,
    HoldState.EXPIRED: pb.Hold.EXPIRED,
}


def hold_to(h: Hold, now: datetime) -> pb.Hold:
    state = h.effective_state(now)
    return pb.Hold(
        id=h.id,
        place_id=h.place_id,
        booking_id=h.booking_id,
        holder_id=h.holder_id,
        ranges=[range_to_proto(r) for r in h.ranges],
        units=h.units,
        state=_HOLD_STATES[state],
        expire_time=ts(h.expires_at) if state is HoldState.HELD or state is HoldState.EXPIRED else None,
        create_time=ts(h.create_time),
        update_time=ts(h.update_time),
        release_reason=h.reason,
    )


def block_to(b: Hold) -> pb.Block:
    return pb.Block(
        id=b.id,
        place_id=b.place_id,
        ranges=[range_to_proto(r) for r in b.ranges],
        reason=b.reason,
        state=pb.Block.ACTIVE if b.state is HoldState.ACTIVE else pb.Block.REMOVED,
        created_by=b.holder_id,
        create_time=ts(b.create_time),
        update_time=ts(b.update_time),
    )
