"""Users' notification preferences and the request log of idempotent RPCs.

Revision ID: notifications_0002
Revises: notifications_0001

The tables are created from their definitions in notifications.adapters.orm (the first version of
each table); a later change to a table gets its own migration with explicit operations.
"""

from alembic import op

from notifications.adapters import orm

revision = "notifications_0002"
down_revision = "notifications_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    orm.preferences.create(bind)
    orm.request_log.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    orm.request_log.drop(bind)
    orm.preferences.drop(bind)
