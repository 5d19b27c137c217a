"""Tables of the availability schema. The domain model stays plain dataclasses; the repositories
translate rows to it explicitly (SQLAlchemy Core), so no ORM state leaks into the domain.

Index budget: every index of a table a statement touches costs one lock (the planner opens them
all), so each table keeps only the indexes its hot paths need:
  places            pk + (lower(city), active, schedule_group, -rating, id)  -> 3 locks
  requests          pk                                                      -> 2 locks
  holds             pk + unique request_id + partial (expires_at) if HELD   -> 4 locks
  calendar_entries  pk (hold_id, id) + exclusion gist + partial live gist   -> 4 locks
  outbox            pk + unique event_id + partial unpublished              -> 4 locks
HoldSlots touches all but `requests`: 15 relation locks + 1 advisory lock, inside the 16 + 1."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, UUID, ExcludeConstraint

from kit.db import schema_metadata
from kit.outbox import outbox_table

SCHEMA = "availability"
metadata = schema_metadata(SCHEMA)
outbox = outbox_table(metadata, SCHEMA)

places = Table(
    "places",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("city", String(100), nullable=False),
    Column("address", String(300), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("unit_count", Integer, nullable=False),
    Column("price_amount", BigInteger, nullable=False),
    Column("price_currency", String(3), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("booking_mode", String(10), nullable=False),
    Column("photo_urls", JSONB, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("rating_sum", BigInteger, nullable=False),
    Column("rating_count", Integer, nullable=False),
    Column("rating_average", Double, nullable=False),
    Column("deposit_policy", JSONB, nullable=False),
    Column("cancellation_policy", JSONB, nullable=False),
    Column("schedule", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Places with the same schedule and zone share their candidate slots in a search (PostgreSQL
    # keeps the column right on every write).
    Column(
        "schedule_group",
        UUID(as_uuid=False),
        Computed("md5(time_zone || ' ' || schedule::text)::uuid", persisted=True),
        nullable=False,
    ),
    # City listings (leading columns) and the search: a group's places in rank order.
    Index("ix_places_search", text("lower(city)"), "active", "schedule_group", text("(-rating_average)"), "id"),
)

# Idempotency keys of the place and rating mutations (holds and blocks keep theirs on `holds`).
requests = Table(
    "requests",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("operation", String(40), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Holds and blocks: both own calendar rows, so both live here (kind 'hold' or 'block').
holds = Table(
    "holds",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("place_id", UUID(as_uuid=False), nullable=False),
    Column("booking_id", String(64), nullable=False),
    Column("holder_id", String(64), nullable=False),
    Column("ranges", JSONB, nullable=False),
    Column("units", Integer, nullable=False),
    Column("state", String(10), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("reason", String(500), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_holds_expiring", "expires_at", postgresql_where=text("state = 'held'")),
)

calendar_entries = Table(
    "calendar_entries",
    metadata,
    Column("hold_id", UUID(as_uuid=False), nullable=False),
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("place_id", UUID(as_uuid=False), nullable=False),
    Column("unit", Integer, nullable=False),
    # What the row keeps others out of: the booked range widened by the schedule's buffers.
    Column("during", TSTZRANGE, nullable=False),
    # What was asked for, without buffers.
    Column("booked", TSTZRANGE, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("booking_id", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    # False once released, expired or unblocked. A column, not `expires_at > now()`: index and
    # constraint predicates must be immutable.
    Column("live", Boolean, nullable=False),
    PrimaryKeyConstraint("hold_id", "id"),
    # The rule of the whole service: live rows of one unit of one place never overlap.
    ExcludeConstraint(
        ("place_id", "="),
        ("unit", "="),
        ("during", "&&"),
        name="ex_calendar_entries_no_overlap",
        using="gist",
        where=text("live"),
    ),
    # Search over all places of a window: one index scan, place ids read from the index.
    Index(
        "ix_calendar_entries_live_during",
        "during",
        postgresql_using="gist",
        postgresql_include=["place_id", "unit", "expires_at"],
        postgresql_where=text("live"),
    ),
)
