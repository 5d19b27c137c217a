"""The transactional outbox of the payments service.

Revision ID: payments_0001
Revises:
"""

from alembic import op

from kit.migrations import create_outbox_table

revision = "payments_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table("payments")


def downgrade() -> None:
    op.drop_table("outbox", schema="payments")
