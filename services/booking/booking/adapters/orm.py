"""Tables of the booking schema (SQLAlchemy Core; the domain model stays plain dataclasses and the
repository maps rows to it explicitly).

Every index costs a lock in every write that touches its table (the lock budget is 16 relation locks
per transaction), so each table carries only the indexes its queries need:
- bookings: pk; (client_id, request_id) unique = CreateBooking idempotency + "my bookings" + the
  pending cap; (host_id, first_start, id) = the host's list; due_time partial = sweepers + recovery.
- booking_ranges: no pk, one GiST (place_id, during) for overlap queries (competing requests).
- booking_history: pk (booking_id, seq), append-only."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE, UUID

from kit.db import schema_metadata
from kit.outbox import outbox_table

SCHEMA = "booking"
metadata = schema_metadata(SCHEMA)
outbox = outbox_table(metadata, SCHEMA)
ID = UUID(as_uuid=False)
TSTZRANGE_ARRAY = ARRAY(TSTZRANGE)

bookings = Table(
    "bookings",
    metadata,
    Column("id", ID, primary_key=True),
    Column("client_id", ID, nullable=False),
    Column("host_id", ID, nullable=False),
    Column("place_id", ID, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("saga_state", String(20), nullable=False),
    Column("ranges", JSONB, nullable=False),
    Column("first_start", DateTime(timezone=True), nullable=False),
    Column("last_end", DateTime(timezone=True), nullable=False),
    Column("guests", Integer, nullable=False),
    Column("units", Integer, nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("deposit_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("policy", JSONB, nullable=False),
    Column("hold_id", String(64), nullable=False, server_default=""),
    Column("payment_id", String(64), nullable=False, server_default=""),
    Column("payment_status", String(30), nullable=False, server_default=""),
    Column("failure_reason", String(100), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("series_id", String(64), nullable=False, server_default=""),
    Column("cancellation", JSONB),
    Column("pending_move", JSONB),
    Column("expire_time", DateTime(timezone=True)),
    Column("due_time", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("client_id", "request_id"),
    Index("ix_bookings_host_id_first_start_id", "host_id", "first_start", "id"),
    Index("ix_bookings_due_time", "due_time", postgresql_where=text("due_time IS NOT NULL")),
)

booking_ranges = Table(
    "booking_ranges",
    metadata,
    Column("booking_id", ID, nullable=False),
    Column("place_id", ID, nullable=False),
    Column("during", TSTZRANGE, nullable=False),
    Index("ix_booking_ranges_place_id_during", "place_id", "during", postgresql_using="gist"),
)

booking_history = Table(
    "booking_history",
    metadata,
    Column("booking_id", ID, nullable=False),
    Column("seq", SmallInteger, nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("change_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("booking_id", "seq"),
)

idempotency = Table(
    "idempotency",
    metadata,
    # "<operation>:<caller>:<request_id>"
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", ID, primary_key=True),
    Column("booking_id", ID, nullable=False, unique=True),
    Column("place_id", ID, nullable=False),
    Column("client_id", ID, nullable=False),
    Column("host_id", ID, nullable=False),
    Column("rating", SmallInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("reply", JSONB),
    Column("hidden", Boolean, nullable=False, server_default=text("false")),
    Column("hide_reason", String(500), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_reviews_place_id_created_at_id", "place_id", "created_at", "id"),
)

place_ratings = Table(
    "place_ratings",
    metadata,
    Column("place_id", ID, primary_key=True),
    Column("rating_sum", BigInteger, nullable=False),
    Column("rating_count", Integer, nullable=False),
)

waitlist = Table(
    "waitlist",
    metadata,
    Column("id", ID, primary_key=True),
    Column("place_id", ID, nullable=False),
    Column("client_id", ID, nullable=False),
    Column("during", TSTZRANGE, nullable=False),
    Column("guests", Integer, nullable=False),
    Column("units", Integer, nullable=False),
    Column("state", String(10), nullable=False),
    Column("hold_id", String(64), nullable=False, server_default=""),
    Column("offer_expire_time", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("booking_id", ID),
    Index("ix_waitlist_place_id_during", "place_id", "during", postgresql_using="gist"),
    Index("ix_waitlist_client_id", "client_id"),
)
