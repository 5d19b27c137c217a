"""Users of the platform and the rules of their fields. Plain Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.domain.errors import InvalidUserField, RoleNotAllowed
from kit.timezones import iana_zone

CLIENT, HOST, AGENT = "client", "host", "agent"
ROLES = frozenset({CLIENT, HOST, AGENT})
# Roles anyone may give themselves at registration; "agent" is granted by agents only.
SELF_SERVICE_ROLES = frozenset({CLIENT, HOST})

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
MIN_PASSWORD, MAX_PASSWORD = 8, 128


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    roles: frozenset[str]
    password_hash: str
    phone: str | None = None
    time_zone: str = "UTC"
    locale: str = "en"
    active: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def with_changes(self, **changes: object) -> User:
        return replace(self, **changes)


@dataclass(frozen=True)
class ProfileChanges:
    """Fields a user may change on their own profile; None means unchanged."""

    name: str | None = None
    phone: str | None = None
    time_zone: str | None = None
    locale: str | None = None
    clear_phone: bool = False


@dataclass(frozen=True)
class ContactShare:
    """A change of a user's contact details that notifications has not confirmed yet."""

    user_id: str
    share_id: str  # the latest change's id: the request id of the call that tells notifications
    with_email: bool  # registration shares the e-mail; later profile changes leave the one set there
    attempts: int = 0


def shares_contact_details(before: User, after: User) -> bool:
    """Notifications keeps the locale, time zone and roles too (to write and route messages)."""
    return (before.locale, before.time_zone, before.roles) != (after.locale, after.time_zone, after.roles)


class RevocationReason(StrEnum):
    """Why a refresh token stopped working."""

    ROTATED = "rotated"  # traded for a new pair
    LOGOUT = "logout"
    CREDENTIALS_CHANGED = "credentials_changed"
    ROLES_CHANGED = "roles_changed"
    DEACTIVATED = "deactivated"
    REUSE_DETECTED = "reuse_detected"  # a rotated token of the user came back: every session ended


# A rotated refresh token presented again this soon after its rotation is the same client's retry
# (two requests racing, an answer lost on the way), not a thief: refused, but the sessions stay.
ROTATION_GRACE = timedelta(seconds=10)


def is_reuse(revoked_because: str | None, revoked_at: datetime | None = None, now: datetime | None = None) -> bool:
    """Whether presenting this revoked refresh token again is a sign of theft. Only a rotated token
    is: its owner already holds the pair it was traded for, so someone else has a copy. A token
    ended by logout, a password or role change or a deactivation is merely stale (a second device
    that has not heard yet), and ending the user's newer sessions for it would be wrong.

    Tokens revoked before the reason was recorded (identity_0005) have none and count as reuse, as
    every revoked token did before: which of them were rotated is unknown, a rotated one may be a
    stolen copy, and a false alarm only costs the user one more login."""
    if revoked_because == RevocationReason.ROTATED and revoked_at and now and now - revoked_at < ROTATION_GRACE:
        return False
    return revoked_because is None or revoked_because == RevocationReason.ROTATED


def sessions_end_because(before: User, after: User, password_changed: bool) -> RevocationReason | None:
    """Why a change of the user ends their sessions (the tokens carry the old credentials, roles or
    active flag), or None when they may go on."""
    if not after.active:
        return RevocationReason.DEACTIVATED
    if password_changed:
        return RevocationReason.CREDENTIALS_CHANGED
    if after.roles != before.roles:
        return RevocationReason.ROLES_CHANGED
    return None


@dataclass(frozen=True)
class UserFilter:
    query: str = ""
    role: str | None = None
    active: bool | None = None


@dataclass(frozen=True)
class UserStats:
    total: int
    active: int
    by_role: dict[str, int] = field(default_factory=dict)
    signups_per_day: list[tuple[str, int]] = field(default_factory=list)


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidUserField("email must be a valid address of at most 254 characters", "INVALID_EMAIL")
    return value


def validate_name(name: str) -> str:
    value = name.strip()
    if not 1 <= len(value) <= 200:
        raise InvalidUserField("name must have 1-200 characters", "INVALID_NAME")
    return value


def validate_phone(phone: str) -> str:
    if not _PHONE.match(phone):
        raise InvalidUserField("phone must be in E.164 form, for example +33612345678", "INVALID_PHONE")
    return phone


def validate_time_zone(time_zone: str) -> str:
    if iana_zone(time_zone) is None:
        raise InvalidUserField(f"unknown time zone {time_zone[:64]!r}", "INVALID_TIME_ZONE")
    return time_zone


def validate_locale(locale: str) -> str:
    if not _LOCALE.match(locale):
        raise InvalidUserField("locale must be a BCP 47 tag such as en or fr-FR", "INVALID_LOCALE")
    return locale


def validate_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidUserField(f"password must have {MIN_PASSWORD}-{MAX_PASSWORD} characters", "INVALID_PASSWORD")
    return password


def validate_roles(roles: frozenset[str] | set[str] | list[str], self_service: bool = False) -> frozenset[str]:
    wanted = frozenset(roles)
    if not wanted:
        raise InvalidUserField("a user needs at least one role", "INVALID_ROLES")
    unknown = wanted - ROLES
    if unknown:
        raise InvalidUserField(f"unknown roles: {', '.join(sorted(unknown))[:100]}", "INVALID_ROLES")
    if self_service and wanted - SELF_SERVICE_ROLES:
        raise RoleNotAllowed("only agents can grant the agent role")
    return wanted


def apply_profile(user: User, changes: ProfileChanges) -> User:
    """The user with the changed profile fields validated and applied."""
    updated = user
    if changes.name is not None:
        updated = updated.with_changes(name=validate_name(changes.name))
    if changes.clear_phone:
        updated = updated.with_changes(phone=None)
    elif changes.phone is not None:
        updated = updated.with_changes(phone=validate_phone(changes.phone))
    if changes.time_zone is not None:
        updated = updated.with_changes(time_zone=validate_time_zone(changes.time_zone))
    if changes.locale is not None:
        updated = updated.with_changes(locale=validate_locale(changes.locale))
    return updated
