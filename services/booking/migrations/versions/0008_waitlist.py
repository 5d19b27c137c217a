"""Waitlist entries for taken ranges.

Revision ID: booking_0008
Revises: booking_0007
"""

from alembic import op

revision = "booking_0008"
down_revision = "booking_0007"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.waitlist (
            id uuid PRIMARY KEY,
            place_id uuid NOT NULL,
            client_id uuid NOT NULL,
            during tstzrange NOT NULL,
            guests integer NOT NULL,
            units integer NOT NULL,
            state varchar(10) NOT NULL,
            hold_id varchar(64) NOT NULL DEFAULT '',
            offer_expire_time timestamptz,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );
        CREATE INDEX ix_waitlist_place_id_during ON booking.waitlist USING gist (place_id, during);
        CREATE INDEX ix_waitlist_client_id ON booking.waitlist (client_id);
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.waitlist")
