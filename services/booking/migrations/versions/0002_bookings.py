"""Bookings: one row per booking, version column for optimistic concurrency.

Revision ID: booking_0002
Revises: booking_0001
"""

from alembic import op

revision = "booking_0002"
down_revision = "booking_0001"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.bookings (
            id uuid PRIMARY KEY,
            client_id uuid NOT NULL,
            host_id uuid NOT NULL,
            place_id uuid NOT NULL,
            request_id varchar(64) NOT NULL,
            fingerprint varchar(64) NOT NULL,
            mode varchar(10) NOT NULL,
            status varchar(20) NOT NULL,
            saga_state varchar(20) NOT NULL,
            ranges jsonb NOT NULL,
            first_start timestamptz NOT NULL,
            last_end timestamptz NOT NULL,
            guests integer NOT NULL CHECK (guests >= 1),
            units integer NOT NULL CHECK (units >= 1),
            price_minor bigint NOT NULL CHECK (price_minor >= 0),
            deposit_minor bigint NOT NULL CHECK (deposit_minor >= 0),
            currency varchar(3) NOT NULL,
            policy jsonb NOT NULL,
            hold_id varchar(64) NOT NULL DEFAULT '',
            payment_id varchar(64) NOT NULL DEFAULT '',
            payment_status varchar(30) NOT NULL DEFAULT '',
            failure_reason varchar(100) NOT NULL DEFAULT '',
            note text NOT NULL DEFAULT '',
            series_id varchar(64) NOT NULL DEFAULT '',
            cancellation jsonb,
            expire_time timestamptz,
            due_time timestamptz,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version integer NOT NULL,
            CONSTRAINT uq_bookings_client_id_request_id UNIQUE (client_id, request_id)
        );
        CREATE INDEX ix_bookings_host_id_first_start_id ON booking.bookings (host_id, first_start, id);
        CREATE INDEX ix_bookings_due_time ON booking.bookings (due_time) WHERE due_time IS NOT NULL;
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.bookings")
