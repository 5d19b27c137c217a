"""Identity use cases: registration, tokens (issue, rotate, revoke), profiles, user management."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.domain import model
from gateway.domain.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidFeedLink,
    InvalidRefreshToken,
    UserNotFound,
)
from gateway.domain.model import ContactShare, ProfileChanges, RevocationReason, User, UserFilter, UserStats
from gateway.service_layer.unit_of_work import IdentityUnitOfWork
from kit.errors import ReservaError

log = logging.getLogger("reserva.gateway.identity")

# Tells notifications a user's contact details (the UpdatePreferences call, by the share's id);
# raises ReservaError when they were not taken.
SendContactDetails = Callable[[User, ContactShare], Awaitable[None]]
# A pending share's retries wait twice as long after each failure, up to this.
CONTACT_RETRY_MAX = timedelta(hours=1)


@dataclass
class IdentityDeps:
    """What the identity handlers need; built by the composition root."""

    uow: Callable[[], IdentityUnitOfWork]
    passwords: object  # Argon2Passwords: hash(password), verify(hash, password)
    tokens: object  # TokenIssuer: issue(user_id, roles), ttl_s
    revocations: object  # AccessRevocations: revoke_users(ids), revoke_token(claims)
    new_refresh_token: Callable[[], str]
    digest: Callable[[str], str]
    refresh_ttl_s: int
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The request that changed a user tells notifications at once; a contact share still pending
    # this long after is the retry worker's, which then doubles the wait after each failure.
    contact_retry_after: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


@dataclass(frozen=True)
class NewUser:
    email: str
    password: str
    name: str
    roles: frozenset[str]
    phone: str | None = None
    time_zone: str = "UTC"
    locale: str = "en"


@dataclass(frozen=True)
class BulkResult:
    requested: int
    changed: int
    batches: int


async def register_user(deps: IdentityDeps, new: NewUser, by_agent: bool = False) -> User:
    """Create a user; self-registration may only pick client/host roles."""
    user = User(
        id=str(uuid.uuid4()),
        email=model.normalize_email(new.email),
        name=model.validate_name(new.name),
        roles=model.validate_roles(new.roles, self_service=not by_agent),
        password_hash="",
        phone=model.validate_phone(new.phone) if new.phone else None,
        time_zone=model.validate_time_zone(new.time_zone),
        locale=model.validate_locale(new.locale),
    )
    model.validate_password(new.password)
    user = user.with_changes(password_hash=await deps.passwords.hash(new.password))
    async with deps.uow() as uow:
        if not await uow.users.add(user):
            raise EmailAlreadyRegistered()
        created = await uow.users.get(user.id)
        await uow.contact_shares.mark([user.id], with_email=True, first_attempt_after=deps.contact_retry_after)
        await uow.commit()
    return created


async def ensure_agent(deps: IdentityDeps, email: str, password: str) -> bool:
    """Create the bootstrap agent unless a user with that e-mail exists; True if created."""
    async with deps.uow() as uow:
        existing = await uow.users.get_by_email(model.normalize_email(email))
    if existing is not None:
        return False
    new = NewUser(email=email, password=password, name="Reserva agent", roles=frozenset({model.AGENT}))
    try:
        await register_user(deps, new, by_agent=True)
    except EmailAlreadyRegistered:
        return False  # another gateway replica created it meanwhile
    return True


async def _issue(deps: IdentityDeps, uow: IdentityUnitOfWork, user: User) -> TokenPair:
    refresh = deps.new_refresh_token()
    expires = deps.clock() + timedelta(seconds=deps.refresh_ttl_s)
    await uow.refresh_tokens.add(str(uuid.uuid4()), user.id, deps.digest(refresh), expires)
    return TokenPair(deps.tokens.issue(user.id, user.roles), refresh, deps.tokens.ttl_s, user)


async def issue_tokens(deps: IdentityDeps, email: str, password: str) -> TokenPair:
    """Password login: an access token and a refresh token."""
    try:
        normalized = model.normalize_email(email)
    except model.InvalidUserField:
        raise InvalidCredentials() from None
    async with deps.uow() as uow:
        user = await uow.users.get_by_email(normalized)
    # Verify even for unknown users so the timing does not reveal which e-mails exist.
    valid = await deps.passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.active:
        raise InvalidCredentials()
    async with deps.uow() as uow:
        pair = await _issue(deps, uow, user)
        await uow.commit()
    return pair


async def rotate_refresh_token(deps: IdentityDeps, refresh_token: str) -> TokenPair:
    """Trade a refresh token for a new pair; a reused (already rotated) token revokes every session."""
    async with deps.uow() as uow:
        row = await uow.refresh_tokens.get_for_update(deps.digest(refresh_token))
        if row is None:
            raise InvalidRefreshToken()
        user_id = str(row.user_id)
        if row.revoked_at is not None:
            if not model.is_reuse(row.revoked_reason, row.revoked_at, deps.clock()):
                # Ended by a logout or a change of the user, or the same client's retry of a
                # rotation: stale, not stolen; refused, nothing more.
                raise InvalidRefreshToken()
            # Reuse of a rotated token means it leaked: end every session of the user.
            await uow.refresh_tokens.revoke_all_of([user_id], RevocationReason.REUSE_DETECTED)
            await uow.commit()
            await deps.revocations.revoke_users([user_id])
            raise InvalidRefreshToken()
        user = await uow.users.get(user_id)
        if row.expires_at <= deps.clock() or user is None or not user.active:
            raise InvalidRefreshToken()
        await uow.refresh_tokens.revoke(str(row.id), RevocationReason.ROTATED)
        pair = await _issue(deps, uow, user)
        await uow.commit()
    return pair


async def revoke_session(deps: IdentityDeps, refresh_token: str | None, access_claims) -> None:
    """Logout: revoke this session's refresh token and its access token."""
    if refresh_token:
        async with deps.uow() as uow:
            row = await uow.refresh_tokens.get_for_update(deps.digest(refresh_token))
            if row is not None and str(row.user_id) == access_claims.user_id:
                await uow.refresh_tokens.revoke(str(row.id), RevocationReason.LOGOUT)
                await uow.commit()
    await deps.revocations.revoke_token(access_claims)


async def get_user(deps: IdentityDeps, user_id: str) -> User:
    """One user by id."""
    async with deps.uow() as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFound()
    return user


async def update_user(
    deps: IdentityDeps,
    user_id: str,
    changes: ProfileChanges,
    new_password: str | None = None,
    roles: frozenset[str] | None = None,
    active: bool | None = None,
) -> User:
    """Change a profile (self) or, for agents, also roles and the active flag."""
    password_hash = None
    if new_password is not None:
        password_hash = await deps.passwords.hash(model.validate_password(new_password))
    if roles is not None:
        roles = model.validate_roles(roles)
    async with deps.uow() as uow:
        user = await uow.users.get(user_id, for_update=True)
        if user is None:
            raise UserNotFound()
        updated = model.apply_profile(user, changes)
        if password_hash is not None:
            updated = updated.with_changes(password_hash=password_hash)
        if roles is not None:
            updated = updated.with_changes(roles=roles)
        if active is not None:
            updated = updated.with_changes(active=active)
        # New credentials, roles or a deactivation end the sessions that carry the old ones.
        ended_because = model.sessions_end_because(user, updated, password_changed=password_hash is not None)
        saved = await uow.users.update(updated)
        if ended_because is not None:
            await uow.refresh_tokens.revoke_all_of([user_id], ended_because)
        if model.shares_contact_details(user, saved):
            await uow.contact_shares.mark([user_id], with_email=False, first_attempt_after=deps.contact_retry_after)
        await uow.commit()
    if ended_because is not None:
        await deps.revocations.revoke_users([user_id])
    return saved


async def list_users(
    deps: IdentityDeps, where: UserFilter, after_email: str | None, page_size: int
) -> tuple[list[User], str | None]:
    """A keyset page of users and the e-mail to continue after (None on the last page)."""
    async with deps.uow() as uow:
        page = await uow.users.list(where, after_email, page_size + 1)
    if len(page) > page_size:
        return page[:page_size], page[page_size - 1].email
    return page, None


def _batches(ids: list[str], size: int):
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


async def bulk_set_active(deps: IdentityDeps, user_ids: list[str], active: bool, batch_size: int) -> BulkResult:
    """(De)activate many users, each batch its own short transaction."""
    changed = batches = 0
    for batch in _batches(user_ids, batch_size):
        async with deps.uow() as uow:
            ids = await uow.users.set_active(batch, active)
            if ids and not active:
                await uow.refresh_tokens.revoke_all_of(ids, RevocationReason.DEACTIVATED)
            await uow.commit()
        if ids and not active:
            await deps.revocations.revoke_users(ids)
        changed, batches = changed + len(ids), batches + 1
    return BulkResult(len(set(user_ids)), changed, batches)


async def bulk_set_roles(deps: IdentityDeps, user_ids: list[str], roles: frozenset[str], batch_size: int) -> BulkResult:
    """Give many users the same roles, each batch its own short transaction."""
    roles = model.validate_roles(roles)
    changed = batches = 0
    for batch in _batches(user_ids, batch_size):
        async with deps.uow() as uow:
            ids = await uow.users.set_roles(batch, roles)
            if ids:
                await uow.refresh_tokens.revoke_all_of(ids, RevocationReason.ROLES_CHANGED)
                # No request waits on these: the retry worker tells notifications.
                await uow.contact_shares.mark(ids, with_email=False, first_attempt_after=timedelta())
            await uow.commit()
        if ids:
            await deps.revocations.revoke_users(ids)
        changed, batches = changed + len(ids), batches + 1
    return BulkResult(len(set(user_ids)), changed, batches)


async def user_stats(deps: IdentityDeps, start: datetime, end: datetime, time_zone: str) -> UserStats:
    """Counts by role and sign-ups per local day."""
    model.validate_time_zone(time_zone)
    async with deps.uow() as uow:
        return await uow.users.stats(start, end, time_zone)


async def make_calendar_feed_link(deps: IdentityDeps, place_id: str, user_id: str) -> str:
    """A new secret for the place's calendar feed, read on behalf of `user_id` (whom the caller has
    checked may read it); the place's link before it stops working. Only its digest is stored."""
    secret = deps.new_refresh_token()  # the same kind of secret: 32 random bytes, URL-safe
    async with deps.uow() as uow:
        await uow.calendar_feeds.replace(place_id, user_id, deps.digest(secret))
        await uow.commit()
    return secret


async def remove_calendar_feed_link(deps: IdentityDeps, place_id: str) -> bool:
    async with deps.uow() as uow:
        removed = await uow.calendar_feeds.remove(place_id)
        await uow.commit()
    return removed


async def calendar_feed_reader(deps: IdentityDeps, place_id: str, secret: str) -> User:
    """The active user a place's feed link reads on behalf of; InvalidFeedLink otherwise (the
    services then check that this user may still read the place's calendar)."""
    async with deps.uow() as uow:
        user_id = await uow.calendar_feeds.user_of(place_id, deps.digest(secret))
        user = await uow.users.get(user_id) if user_id is not None else None
    if user is None or not user.active:
        raise InvalidFeedLink()
    return user


async def share_contact_details(deps: IdentityDeps, send: SendContactDetails, user: User) -> bool:
    """Tell notifications the pending contact change of `user` (as the request just saved it) now.
    False: it is still pending, and the retry worker (retry_contact_shares) will deliver it; the
    caller's request succeeds anyway."""
    async with deps.uow() as uow:
        share = await uow.contact_shares.of(user.id)
    if share is None:
        return True
    return await _deliver_contact_details(deps, send, user, share)


async def retry_contact_shares(deps: IdentityDeps, send: SendContactDetails, limit: int) -> int:
    """One round of the retry worker: the due shares, each delivered or pushed back. Returns how
    many were delivered."""
    async with deps.uow() as uow:
        due = await uow.contact_shares.claim_due(
            limit, deps.contact_retry_after.total_seconds(), CONTACT_RETRY_MAX.total_seconds()
        )
        known = await uow.users.get_many([share.user_id for share in due])
        await uow.commit()
    delivered = 0
    for share in due:
        if share.user_id in known:
            delivered += await _deliver_contact_details(deps, send, known[share.user_id], share)
    return delivered


async def _deliver_contact_details(
    deps: IdentityDeps, send: SendContactDetails, user: User, share: ContactShare
) -> bool:
    try:
        await send(user, share)
    except ReservaError as error:
        log.warning(
            "notifications did not take a user's contact details; they will be retried",
            extra={"user_id": user.id, "reason": error.reason, "attempts": share.attempts},
        )
        return False
    async with deps.uow() as uow:
        await uow.contact_shares.confirmed(share.user_id, share.share_id)
        await uow.commit()
    return True
