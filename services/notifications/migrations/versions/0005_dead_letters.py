"""Events that could not be processed, for operators to inspect and replay.

Revision ID: notifications_0005
Revises: notifications_0004

The tables are created from their definitions in notifications.adapters.orm (the first version of
each table); a later change to a table gets its own migration with explicit operations.
"""

from alembic import op

from notifications.adapters import orm

revision = "notifications_0005"
down_revision = "notifications_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    orm.dead_letters.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    orm.dead_letters.drop(bind)
