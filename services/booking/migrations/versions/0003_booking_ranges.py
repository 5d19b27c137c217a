"""Booked ranges, one tstzrange per row, GiST-indexed for overlap queries (competing requests).

Revision ID: booking_0003
Revises: booking_0002
"""

from alembic import op

revision = "booking_0003"
down_revision = "booking_0002"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.booking_ranges (
            booking_id uuid NOT NULL,
            place_id uuid NOT NULL,
            during tstzrange NOT NULL
        );
        CREATE INDEX ix_booking_ranges_place_id_during ON booking.booking_ranges USING gist (place_id, during);
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.booking_ranges")
