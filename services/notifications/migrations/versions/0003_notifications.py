"""Notifications and the processed-events table the consumer deduplicates on.

Revision ID: notifications_0003
Revises: notifications_0002

The tables are created from their definitions in notifications.adapters.orm (the first version of
each table); a later change to a table gets its own migration with explicit operations.
"""

from alembic import op

from notifications.adapters import orm

revision = "notifications_0003"
down_revision = "notifications_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    orm.notifications.create(bind)
    orm.processed_events.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    orm.processed_events.drop(bind)
    orm.notifications.drop(bind)
