"""Proto <-> domain translation for the NotificationService API."""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message

from kit import prototime
from kit.errors import InvalidArgument
from notifications.domain.errors import InvalidQuietHours
from notifications.domain.model import (
    Announcement,
    AnnouncementState,
    Channel,
    ChannelSwitch,
    DeadLetter,
    DeadLetterState,
    Notification,
    Preferences,
    Status,
)
from notifications.service_layer.handlers import PreferencesUpdate
from reserva.notifications.v1 import notifications_pb2 as pb
from reserva.type.v1 import types_pb2

CHANNEL_TO_PROTO = {
    Channel.EMAIL: pb.CHANNEL_EMAIL,
    Channel.SMS: pb.CHANNEL_SMS,
    Channel.WEBHOOK: pb.CHANNEL_WEBHOOK,
    Channel.IN_APP: pb.CHANNEL_IN_APP,
}
CHANNEL_FROM_PROTO = {v: k for k, v in CHANNEL_TO_PROTO.items()}
STATUS_TO_PROTO = {
    Status.QUEUED: pb.Notification.QUEUED,
    Status.SENDING: pb.Notification.QUEUED,  # being sent right now: still waiting, for the user
    Status.DEFERRED: pb.Notification.DEFERRED,
    Status.SENT: pb.Notification.SENT,
    Status.FAILED: pb.Notification.FAILED,
    Status.CANCELLED: pb.Notification.CANCELLED,
}
ROLE_FROM_PROTO = {pb.ROLE_CLIENT: "client", pb.ROLE_HOST: "host", pb.ROLE_OPERATOR: "agent"}
ROLE_TO_PROTO = {v: k for k, v in ROLE_FROM_PROTO.items()}
ANNOUNCEMENT_STATE = {
    AnnouncementState.PENDING: pb.Announcement.PENDING,
    AnnouncementState.SENDING: pb.Announcement.SENDING,
    AnnouncementState.COMPLETED: pb.Announcement.COMPLETED,
    AnnouncementState.FAILED: pb.Announcement.FAILED,
}
DEAD_LETTER_STATE = {
    DeadLetterState.PENDING: pb.DeadLetter.PENDING,
    DeadLetterState.REPLAYED: pb.DeadLetter.REPLAYED,
    DeadLetterState.REPLAY_FAILED: pb.DeadLetter.REPLAY_FAILED,
}
DEAD_LETTER_STATE_FROM_PROTO = {v: k for k, v in DEAD_LETTER_STATE.items()}


def fingerprint(request: Message) -> str:
    """Hash of the request without its request_id: what "same parameters" means for idempotency."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


timestamp = prototime.optional_timestamp


def notification_to_proto(n: Notification) -> pb.Notification:
    message = pb.Notification(
        id=n.id,
        user_id=n.user_id,
        event_type=n.event_type,
        channel=CHANNEL_TO_PROTO[n.channel],
        subject=n.subject,
        body=n.body,
        status=STATUS_TO_PROTO[n.status],
        attempts=n.attempts,
        failure_reason=n.failure_reason,
        read=n.read,
        create_time=timestamp(n.created_at),
    )
    when = (
        n.sent_at if n.status is Status.SENT else n.send_after if n.status in (Status.QUEUED, Status.DEFERRED) else None
    )
    if when is not None:
        message.send_time.CopyFrom(timestamp(when))
    return message


def _local_time(minutes: int) -> types_pb2.LocalTime:
    return types_pb2.LocalTime(hours=minutes // 60, minutes=minutes % 60)


def preferences_to_proto(p: Preferences) -> pb.Preferences:
    message = pb.Preferences(
        user_id=p.user_id,
        email=p.email,
        phone=p.phone,
        webhook_url=p.webhook_url,
        webhook_secret_set=bool(p.webhook_secret),
        locale=p.locale,
        time_zone=p.time_zone,
        channel_preferences=[
            pb.ChannelPreference(event_type=s.event_type, channel=CHANNEL_TO_PROTO[s.channel], enabled=s.enabled)
            for s in p.switches
        ],
        etag=p.etag,
    )
    if p.quiet_hours is not None:
        message.quiet_hours_start.CopyFrom(_local_time(p.quiet_hours.start))
        message.quiet_hours_end.CopyFrom(_local_time(p.quiet_hours.end))
    if p.update_time is not None:
        message.update_time.CopyFrom(timestamp(p.update_time))
    return message


def _minutes(message: pb.Preferences, name: str) -> int | None:
    if not message.HasField(name):
        return None
    value = getattr(message, name)
    if not (0 <= value.hours <= 23 and 0 <= value.minutes <= 59):
        raise InvalidQuietHours(f"{name} must be a time of day (hours 0-23, minutes 0-59)")
    return value.hours * 60 + value.minutes


def preferences_update_from_proto(request: pb.UpdatePreferencesRequest) -> PreferencesUpdate:
    p = request.preferences
    switches = []
    for item in p.channel_preferences:
        if item.channel not in CHANNEL_FROM_PROTO:
            raise InvalidArgument("channel_preferences need a channel", reason="INVALID_CHANNEL_PREFERENCE")
        switches.append(ChannelSwitch(item.event_type, CHANNEL_FROM_PROTO[item.channel], item.enabled))
    values = {
        "email": p.email,
        "phone": p.phone,
        "webhook_url": p.webhook_url,
        "webhook_secret": p.webhook_secret,
        "locale": p.locale,
        "time_zone": p.time_zone,
        "quiet_hours_start": _minutes(p, "quiet_hours_start"),
        "quiet_hours_end": _minutes(p, "quiet_hours_end"),
        "channel_preferences": switches,
    }
    return PreferencesUpdate(p.user_id, tuple(request.update_mask.paths), values, p.etag)


def announcement_to_proto(a: Announcement) -> pb.Announcement:
    message = pb.Announcement(
        id=a.id,
        subject=a.subject,
        body=a.body,
        filter=pb.AnnouncementFilter(roles=[ROLE_TO_PROTO[r] for r in a.roles], user_ids=a.user_ids),
        state=ANNOUNCEMENT_STATE[a.state],
        sent_count=a.sent_count,
        failed_count=a.failed_count,
        total=a.total,
        created_by=a.created_by,
        create_time=timestamp(a.created_at),
    )
    if a.complete_time is not None:
        message.complete_time.CopyFrom(timestamp(a.complete_time))
    return message


def roles_from_proto(roles) -> list[str]:
    if any(r not in ROLE_FROM_PROTO for r in roles):
        raise InvalidArgument("filter.roles must be CLIENT, HOST or OPERATOR", reason="INVALID_FILTER")
    return [ROLE_FROM_PROTO[r] for r in roles]


def dead_letter_to_proto(d: DeadLetter) -> pb.DeadLetter:
    message = pb.DeadLetter(
        id=d.id,
        stream=d.stream,
        consumer_group=d.consumer_group,
        event_id=d.event_id,
        event_type=d.event_type,
        envelope=d.envelope,
        error=d.error,
        attempts=d.attempts,
        state=DEAD_LETTER_STATE[d.state],
        create_time=timestamp(d.create_time),
    )
    if d.replay_time is not None:
        message.replay_time.CopyFrom(timestamp(d.replay_time))
    return message


def dead_letter_states_from_proto(states) -> list[DeadLetterState]:
    if any(s not in DEAD_LETTER_STATE_FROM_PROTO for s in states):
        raise InvalidArgument("states must be PENDING, REPLAYED or REPLAY_FAILED", reason="INVALID_STATE")
    return [DEAD_LETTER_STATE_FROM_PROTO[s] for s in states]
