"""Scheduled reminders and operator announcements.

Revision ID: notifications_0004
Revises: notifications_0003

The tables are created from their definitions in notifications.adapters.orm (the first version of
each table); a later change to a table gets its own migration with explicit operations.
"""

from alembic import op

from notifications.adapters import orm

revision = "notifications_0004"
down_revision = "notifications_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    orm.reminders.create(bind)
    orm.announcements.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    orm.announcements.drop(bind)
    orm.reminders.drop(bind)
