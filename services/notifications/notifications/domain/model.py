"""The notifications domain: preferences, notifications and their delivery lifecycle, reminders,
announcements and dead letters. Plain Python; times are aware datetimes in UTC."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from kit.timezones import iana_zone
from notifications.domain import errors


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    IN_APP = "in_app"


class Status(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Channels quiet hours postpone (webhooks are machines; in-app is only stored).
QUIET_CHANNELS = (Channel.EMAIL, Channel.SMS)
# Default when no preference names the pair: e-mail and in-app on, the rest off.
DEFAULT_ON = (Channel.EMAIL, Channel.IN_APP)
MISSING_ADDRESS_REASON = {
    Channel.EMAIL: "no email address",
    Channel.SMS: "no phone number",
    Channel.WEBHOOK: "no webhook url",
}
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class QuietHours:
    """A daily window in the user's time zone, in minutes after midnight; may wrap past midnight."""

    start: int
    end: int

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if not 0 <= value < 24 * 60:
                raise errors.InvalidQuietHours("quiet hours must be times of day between 00:00 and 23:59")

    def contains(self, minute: int) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def end_after(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """The UTC instant the window ends if `now` is inside it, else None."""
        local = now.astimezone(zone)
        minute = local.hour * 60 + local.minute
        if not self.contains(minute):
            return None
        day = local.date() if minute < self.end else local.date() + timedelta(days=1)
        end_local = datetime.combine(day, time(self.end // 60, self.end % 60), tzinfo=zone)
        return end_local.astimezone(UTC)


@dataclass(frozen=True)
class ChannelSwitch:
    event_type: str
    channel: Channel
    enabled: bool


@dataclass
class Preferences:
    user_id: str
    email: str = ""
    phone: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    locale: str = "en"
    time_zone: str = "UTC"
    quiet_hours: QuietHours | None = None
    switches: list[ChannelSwitch] = field(default_factory=list)
    roles: frozenset[str] = frozenset()
    version: int = 0
    update_time: datetime | None = None

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.time_zone)

    def channel_enabled(self, event_type: str, channel: Channel) -> bool:
        """A switch naming the event type wins over one for "*", which wins over the default."""
        if channel is Channel.IN_APP:
            return True
        by_key = {(s.event_type, s.channel): s.enabled for s in self.switches}
        for key in ((event_type, channel), ("*", channel)):
            if key in by_key:
                return by_key[key]
        return channel in DEFAULT_ON

    def address_for(self, channel: Channel) -> str:
        return {Channel.EMAIL: self.email, Channel.SMS: self.phone, Channel.WEBHOOK: self.webhook_url}.get(channel, "")

    def quiet_until(self, now: datetime, channel: Channel) -> datetime | None:
        if self.quiet_hours is None or channel not in QUIET_CHANNELS:
            return None
        return self.quiet_hours.end_after(now, self.zone)


def zone_of(name: str) -> ZoneInfo:
    found = iana_zone(name)
    if found is None:
        raise errors.InvalidTimeZone(f"unknown IANA time zone {name[:64]!r}")
    return found


@dataclass
class Notification:
    id: str
    user_id: str
    event_id: str | None
    event_type: str
    channel: Channel
    address: str
    subject: str
    body: str
    html: str
    status: Status
    created_at: datetime
    send_after: datetime | None = None
    sent_at: datetime | None = None
    attempts: int = 0
    failure_reason: str = ""
    read: bool = False


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    """What a channel adapter reports. `permanent` failures are not retried."""

    ok: bool
    reason: str = ""
    permanent: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: attempt n waits base * 2^(n-1), capped, times 0.5-1.0."""

    max_attempts: int = 5
    base_s: float = 30.0
    cap_s: float = 3600.0

    def delay(self, attempts: int, rand: float | None = None) -> timedelta:
        r = random.random() if rand is None else rand
        raw = min(self.cap_s, self.base_s * (2 ** max(0, attempts - 1)))
        return timedelta(seconds=raw * (0.5 + r / 2))

    def after_failure(self, attempts: int, result: DeliveryResult, now: datetime) -> tuple[Status, datetime | None]:
        """Next status and due time once attempt number `attempts` has failed."""
        if result.permanent or attempts >= self.max_attempts:
            return Status.FAILED, None
        return Status.DEFERRED, now + self.delay(attempts)


@dataclass(frozen=True)
class Recipient:
    user_id: str
    role: str  # "client", "host" or "agent"


@dataclass(frozen=True)
class IncomingEvent:
    """A decoded domain event: who it concerns and the facts templates may show."""

    event_id: str
    event_type: str
    aggregate_id: str
    occurred_time: datetime
    participants: dict[str, str]  # role -> user id, e.g. {"client": ..., "host": ...}
    facts: dict[str, object]
    booking_start: datetime | None = None


@dataclass
class Reminder:
    id: str
    booking_id: str
    user_id: str
    place_id: str
    offset_s: int
    start_time: datetime
    due_at: datetime


def reminders_for(
    booking_id: str, user_id: str, place_id: str, start: datetime, offsets_s: list[int], now: datetime, new_id
) -> list[Reminder]:
    """One reminder per configured offset before the start; offsets already past are skipped."""
    result = []
    for offset in sorted(set(offsets_s), reverse=True):
        due = start - timedelta(seconds=offset)
        if due > now:
            result.append(Reminder(new_id(), booking_id, user_id, place_id, offset, start, due))
    return result


class AnnouncementState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class Announcement:
    id: str
    request_id: str
    fingerprint: str
    subject: str
    body: str
    roles: list[str]
    user_ids: list[str]
    created_by: str
    created_at: datetime
    state: AnnouncementState = AnnouncementState.PENDING
    cursor: str | None = None
    total: int = 0
    sent_count: int = 0
    failed_count: int = 0
    complete_time: datetime | None = None


class DeadLetterState(StrEnum):
    PENDING = "pending"
    REPLAYED = "replayed"
    REPLAY_FAILED = "replay_failed"


@dataclass
class DeadLetter:
    id: str
    stream: str
    consumer_group: str
    message_id: str
    event_id: str
    event_type: str
    envelope: bytes
    error: str
    attempts: int
    create_time: datetime
    state: DeadLetterState = DeadLetterState.PENDING
    replay_time: datetime | None = None
