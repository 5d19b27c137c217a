"""Tables of the identity schema, owned by the gateway."""

import sqlalchemy as sa

from gateway.domain.model import RevocationReason
from kit.db import schema_metadata

SCHEMA = "identity"
metadata = schema_metadata(SCHEMA)
REVOCATION_REASONS = tuple(reason.value for reason in RevocationReason)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(40)),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("locale", sa.String(16), nullable=False, server_default="en"),
    sa.Column("roles", sa.ARRAY(sa.String(16)), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Refresh tokens are stored as SHA-256 digests only; a token is usable once (rotation) and
# revoked on logout, password or role change, and deactivation. `revoked_reason` says which
# (model.RevocationReason): only a rotated token presented again ends the user's other sessions.
# Tokens revoked before identity_0005 have none.
refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_reason", sa.String(24)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        f"revoked_reason IS NULL OR (revoked_at IS NOT NULL AND revoked_reason IN {REVOCATION_REASONS})",
        name="revoked_reason",
    ),
)

# Calendar feed links: the digest of a secret that lets a calendar app read one place's iCalendar
# feed without a bearer token, on behalf of the user who made the link (the place's owner or an
# agent, who must still be allowed when the feed is read). One per place; a new link replaces it.
calendar_feeds = sa.Table(
    "calendar_feeds",
    metadata,
    sa.Column("place_id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Users whose contact details notifications has not confirmed yet (see handlers.share_contact_details).
# `share_id` names the latest change: it is the request id of the UpdatePreferences call, and a
# confirmation removes the row only if no newer change replaced it meanwhile.
contact_shares = sa.Table(
    "contact_shares",
    metadata,
    sa.Column("user_id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("share_id", sa.Uuid(as_uuid=False), nullable=False),
    sa.Column("with_email", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_contact_shares_due", "next_attempt_at"),
)
