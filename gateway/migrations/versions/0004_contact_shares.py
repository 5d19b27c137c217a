"""Contact shares: the users whose contact details (e-mail, locale, time zone, roles) notifications
has not confirmed yet. Written in the same transaction as the user's change, removed once
notifications has them; a worker retries the rest, so a notifications outage loses nothing.

Revision ID: identity_0004
Revises: identity_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0004"
down_revision = "identity_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_shares",
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("share_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("with_email", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_contact_shares"),
        schema="identity",
    )
    op.create_index("ix_contact_shares_due", "contact_shares", ["next_attempt_at"], schema="identity")


def downgrade() -> None:
    op.drop_table("contact_shares", schema="identity")
