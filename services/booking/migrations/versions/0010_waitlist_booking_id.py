"""Which booking took a waitlist entry's offer, so that the same booking claiming it again (a claim
whose commit acknowledgement was lost) recognizes its own claim.

Revision ID: booking_0010
Revises: booking_0009
"""

from alembic import op

revision = "booking_0010"
down_revision = "booking_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: a catalog change only, no table rewrite.
    op.execute("ALTER TABLE booking.waitlist ADD COLUMN booking_id uuid")


def downgrade() -> None:
    op.execute("ALTER TABLE booking.waitlist DROP COLUMN booking_id")
