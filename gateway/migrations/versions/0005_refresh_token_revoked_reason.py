"""Why a refresh token was revoked: rotated, logout, credentials_changed, roles_changed, deactivated
or reuse_detected. Only a rotated token presented again is taken for a stolen copy; before, every
revoked token was, so a phone refreshing with a token that a password change had ended revoked the
user's newer sessions too. Tokens revoked before this revision keep no reason (NULL) and are
treated as before (see gateway.domain.model.is_reuse).

Revision ID: identity_0005
Revises: identity_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0005"
down_revision = "identity_0004"
branch_labels = None
depends_on = None

REASONS = "('rotated', 'logout', 'credentials_changed', 'roles_changed', 'deactivated', 'reuse_detected')"


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("revoked_reason", sa.String(24)), schema="identity")
    op.create_check_constraint(
        op.f("ck_refresh_tokens_revoked_reason"),  # op.f: the full name, not one for the naming convention
        "refresh_tokens",
        f"revoked_reason IS NULL OR (revoked_at IS NOT NULL AND revoked_reason IN {REASONS})",
        schema="identity",
    )


def downgrade() -> None:
    op.drop_column("refresh_tokens", "revoked_reason", schema="identity")
