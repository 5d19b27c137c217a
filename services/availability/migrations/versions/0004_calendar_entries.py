"""The calendar whose exclusion constraint forbids double booking.

Revision ID: availability_0004
Revises: availability_0003
"""

from alembic import op

revision = "availability_0004"
down_revision = "availability_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE availability.calendar_entries (
            hold_id     uuid        NOT NULL,
            id          bigint      GENERATED ALWAYS AS IDENTITY,
            place_id    uuid        NOT NULL,
            unit        integer     NOT NULL,
            during      tstzrange   NOT NULL,
            booked      tstzrange   NOT NULL,
            kind        varchar(10) NOT NULL,
            booking_id  varchar(64) NOT NULL,
            expires_at  timestamptz,
            live        boolean     NOT NULL,
            CONSTRAINT pk_calendar_entries PRIMARY KEY (hold_id, id),
            CONSTRAINT ck_calendar_entries_kind CHECK (kind IN ('hold', 'confirmed', 'block')),
            CONSTRAINT ck_calendar_entries_ranges CHECK (NOT isempty(booked) AND during @> booked),
            CONSTRAINT ex_calendar_entries_no_overlap
                EXCLUDE USING gist (place_id WITH =, unit WITH =, during WITH &&) WHERE (live)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_calendar_entries_live_during ON availability.calendar_entries "
        "USING gist (during) INCLUDE (place_id, unit, expires_at) WHERE live"
    )


def downgrade() -> None:
    op.drop_table("calendar_entries", schema="availability")
