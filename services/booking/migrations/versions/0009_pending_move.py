"""What a reschedule still owes (the old hold's release, a refund) until it is done.

Revision ID: booking_0009
Revises: booking_0008
"""

from alembic import op

revision = "booking_0009"
down_revision = "booking_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: a catalog change only, no table rewrite.
    op.execute("ALTER TABLE booking.bookings ADD COLUMN pending_move jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE booking.bookings DROP COLUMN pending_move")
