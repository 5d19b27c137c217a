"""The transactional outbox of the booking service.

Revision ID: booking_0001
Revises:
"""

from alembic import op

from kit.migrations import create_outbox_table

revision = "booking_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table("booking")


def downgrade() -> None:
    op.drop_table("outbox", schema="booking")
