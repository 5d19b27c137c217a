"""The bookings whose reminders were planned or cancelled, with the tombstone of their end.

Revision ID: notifications_0006
Revises: notifications_0005

The tables are created from their definitions in notifications.adapters.orm (the first version of
each table); a later change to a table gets its own migration with explicit operations.
"""

from alembic import op

from notifications.adapters import orm

revision = "notifications_0006"
down_revision = "notifications_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    orm.reminder_bookings.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    orm.reminder_bookings.drop(bind)
