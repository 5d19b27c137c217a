"""Tables of the notifications schema. Each table keeps few indexes: every index an insert touches is
one more relation lock, and the consumer's transaction writes to four tables."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from kit.db import schema_metadata
from kit.outbox import outbox_table

SCHEMA = "notifications"
metadata = schema_metadata(SCHEMA)
outbox = outbox_table(metadata, SCHEMA)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", UUID(as_uuid=False), primary_key=True),
    Column("email", String(254), nullable=False, server_default=""),
    Column("phone", String(20), nullable=False, server_default=""),
    Column("webhook_url", String(2048), nullable=False, server_default=""),
    Column("webhook_secret", String(128), nullable=False, server_default=""),
    Column("locale", String(35), nullable=False, server_default="en"),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    # Quiet hours as minutes after local midnight; both set or both null.
    Column("quiet_start", SmallInteger),
    Column("quiet_end", SmallInteger),
    # [[event_type, channel, enabled], ...]
    Column("channel_preferences", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("roles", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("update_time", DateTime(timezone=True)),
    CheckConstraint("(quiet_start IS NULL) = (quiet_end IS NULL)", name="quiet_hours_pair"),
)

# Idempotency of mutating RPCs: the first answer to a request id, replayed to retries.
request_log = Table(
    "request_log",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("operation", String(40), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per consumed event, inserted in the transaction that records its notifications.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(100), primary_key=True),
    Column("event_type", String(100), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

NOTIFICATION_STATUSES = ("queued", "deferred", "sending", "sent", "failed", "cancelled")
notifications = Table(
    "notifications",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("event_id", String(100)),
    Column("event_type", String(100), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("address", String(2048), nullable=False, server_default=""),
    Column("subject", String(200), nullable=False, server_default=""),
    Column("body", Text, nullable=False),
    Column("html", Text, nullable=False, server_default=""),
    Column("status", String(10), nullable=False),
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("failure_reason", String(100), nullable=False, server_default=""),
    Column("read", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # When the row is next due (queued, deferred) or its sending lease ends (sending); every claim
    # and renewal moves it, so the lease end also identifies the claim whose result is recorded.
    Column("send_after", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    CheckConstraint(f"status IN {NOTIFICATION_STATUSES}", name="status"),
    Index("ix_notifications_user_history", "user_id", "created_at", "id"),
    Index(
        "ix_notifications_due",
        "send_after",
        postgresql_where=text("status IN ('queued', 'deferred', 'sending')"),
    ),
)

reminders = Table(
    "reminders",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("booking_id", UUID(as_uuid=False), nullable=False),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("place_id", String(100), nullable=False, server_default=""),
    Column("offset_s", Integer, nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('pending', 'fired', 'cancelled')", name="status"),
    UniqueConstraint("booking_id", "user_id", "offset_s"),
    Index("ix_reminders_due", "due_at", postgresql_where=text("status = 'pending'")),
)

# One row per booking whose reminders were planned or cancelled. Planning and cancelling lock it
# first, so the two never interleave for one booking; `ended_by` is the tombstone that keeps a late
# booking.confirmed or booking.rescheduled (redelivered after a failure, replayed from a dead letter)
# from planning reminders for a booking already cancelled, expired or marked a no-show.
reminder_bookings = Table(
    "reminder_bookings",
    metadata,
    Column("booking_id", UUID(as_uuid=False), primary_key=True),
    Column("ended_by", String(100)),
    Column("ended_at", DateTime(timezone=True)),
)

announcements = Table(
    "announcements",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("roles", ARRAY(Text), nullable=False),
    Column("user_ids", ARRAY(Text), nullable=False),
    Column("state", String(10), nullable=False, server_default="pending"),
    # Last recipient user_id processed: a crashed batch resumes after it.
    Column("cursor", UUID(as_uuid=False)),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("sent_count", Integer, nullable=False, server_default="0"),
    Column("failed_count", Integer, nullable=False, server_default="0"),
    Column("created_by", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("complete_time", DateTime(timezone=True)),
    CheckConstraint("state IN ('pending', 'sending', 'completed', 'failed')", name="state"),
    Index("ix_announcements_active", "created_at", postgresql_where=text("state IN ('pending', 'sending')")),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("stream", String(200), nullable=False),
    Column("consumer_group", String(100), nullable=False),
    Column("message_id", String(40), nullable=False),
    Column("event_id", String(100), nullable=False, server_default=""),
    Column("event_type", String(100), nullable=False, server_default=""),
    Column("envelope", LargeBinary, nullable=False),
    Column("error", String(1000), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("state", String(15), nullable=False, server_default="pending"),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("replay_time", DateTime(timezone=True)),
    CheckConstraint("state IN ('pending', 'replayed', 'replay_failed')", name="state"),
    UniqueConstraint("stream", "message_id"),
    Index("ix_dead_letters_created", "create_time", "id"),
)
