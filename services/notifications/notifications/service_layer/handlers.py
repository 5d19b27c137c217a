"""Use cases behind the RPCs, one function per RPC, each one short transaction."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from kit import page_tokens
from kit.errors import IdempotencyKeyReused, InvalidArgument
from kit.identity import AGENT, CLIENT, HOST, Caller
from notifications.domain import errors, validation
from notifications.domain.model import (
    Announcement,
    ChannelSwitch,
    DeadLetter,
    DeadLetterState,
    Notification,
    Preferences,
    QuietHours,
)
from notifications.service_layer.consuming import record_event
from notifications.service_layer.context import Services

MUTABLE_FIELDS = (
    "email",
    "phone",
    "webhook_url",
    "webhook_secret",
    "locale",
    "time_zone",
    "quiet_hours_start",
    "quiet_hours_end",
    "channel_preferences",
)
OUTPUT_ONLY_FIELDS = ("user_id", "webhook_secret_set", "update_time", "etag")
KNOWN_ROLES = {CLIENT, HOST, AGENT}
DEFAULT_PAGE, MAX_PAGE = 50, 200


def _require_self_or_privileged(caller: Caller, user_id: str) -> None:
    if not (caller.is_privileged or (caller.user_id and caller.user_id == user_id)):
        raise errors.NotOwnNotifications()


def _require_operator(caller: Caller) -> None:
    if not caller.is_privileged:
        raise errors.NotOperator()


def _require_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > 64:
        raise InvalidArgument("request_id is required (at most 64 characters)", reason="INVALID_REQUEST_ID")


def _page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE
    if not 1 <= value <= MAX_PAGE:
        raise errors.InvalidPageSize(f"page_size must be between 1 and {MAX_PAGE}")
    return value


def _encode_token(scope: str, when: datetime, item_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([scope, when.isoformat(), item_id]).encode()).decode()


def _decode_token(token: str, scope: str) -> tuple[datetime, str] | None:
    """The (time, id) position of a token of this scope. Tokens are not signed: a caller may send
    one back edited, so each value is checked by kind (kit.page_tokens) before it reaches a query."""
    if not token:
        return None
    got_scope, when, item_id = page_tokens.position(
        page_tokens.decode(token), page_tokens.text, page_tokens.aware_time, page_tokens.uuid_text
    )
    if got_scope != scope:
        raise errors.InvalidPageToken("page_token belongs to a request with other filters")
    return when, item_id


def _check_uuid(value: str, what: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"{what} must be a UUID", reason="INVALID_ID") from None


# --- preferences -------------------------------------------------------------------------------


async def get_preferences(svc: Services, caller: Caller, user_id: str) -> Preferences:
    """The stored preferences, or the defaults when the user never saved any."""
    user_id = _check_uuid(user_id, "user_id")
    _require_self_or_privileged(caller, user_id)
    async with svc.uow() as uow:
        return await uow.preferences.get(user_id) or Preferences(user_id=user_id)


@dataclass(frozen=True)
class PreferencesUpdate:
    """The new values of the fields named in `paths` (already in domain form)."""

    user_id: str
    paths: tuple[str, ...]
    values: dict[str, object]
    etag: str = ""


def _masked_paths(paths: list[str]) -> tuple[str, ...]:
    if not paths:
        raise errors.InvalidUpdateMask('update_mask must name at least one field (or "*")')
    if "*" in paths:
        return MUTABLE_FIELDS
    for path in paths:
        if path in OUTPUT_ONLY_FIELDS:
            raise errors.InvalidUpdateMask(f"{path} is output only")
        if path not in MUTABLE_FIELDS:
            raise errors.InvalidUpdateMask(f"unknown field {path!r} in update_mask")
    return tuple(dict.fromkeys(paths))


def _apply(prefs: Preferences, paths: tuple[str, ...], values: dict[str, object], private_targets: bool) -> None:
    checks = {
        "email": validation.normalized_email,
        "phone": validation.checked_phone,
        "webhook_url": lambda url: validation.checked_webhook_url(url, private_targets),
        "webhook_secret": validation.checked_secret,
        "locale": validation.checked_locale,
        "time_zone": validation.checked_time_zone,
    }
    for path in paths:
        if path in checks:
            setattr(prefs, path, checks[path](str(values.get(path) or "")))
    if "quiet_hours_start" in paths or "quiet_hours_end" in paths:
        current = prefs.quiet_hours
        start = values.get("quiet_hours_start") if "quiet_hours_start" in paths else (current and current.start)
        end = values.get("quiet_hours_end") if "quiet_hours_end" in paths else (current and current.end)
        if (start is None) != (end is None):
            raise errors.InvalidQuietHours("quiet_hours_start and quiet_hours_end must be set together")
        prefs.quiet_hours = None if start is None else QuietHours(int(start), int(end))
    if "channel_preferences" in paths:
        switches = list(values.get("channel_preferences") or [])
        if len(switches) > 200:
            raise InvalidArgument("at most 200 channel_preferences", reason="INVALID_CHANNEL_PREFERENCE")
        for switch in switches:
            if not switch.event_type or len(switch.event_type) > 100:
                raise InvalidArgument("channel_preferences need an event_type", reason="INVALID_CHANNEL_PREFERENCE")
        # One switch per (event type, channel): the last one given wins.
        prefs.switches = list({(s.event_type, s.channel): s for s in switches}.values())
    if prefs.webhook_url and not prefs.webhook_secret:
        raise errors.InvalidWebhookUrl("a webhook_url needs a webhook_secret to sign its requests")


async def update_preferences(
    svc: Services, caller: Caller, request_id: str, fingerprint: str, update: PreferencesUpdate
) -> Preferences:
    """Replaces the masked fields; idempotent per request id; a stale etag is ABORTED."""
    _require_request_id(request_id)
    user_id = _check_uuid(update.user_id, "preferences.user_id")
    _require_self_or_privileged(caller, user_id)
    paths = _masked_paths(list(update.paths))
    async with svc.uow() as uow:
        await uow.request_log.lock(request_id, "UpdatePreferences")
        seen = await uow.request_log.find(request_id, "UpdatePreferences")
        if seen is not None:
            if seen[0] != fingerprint:
                raise IdempotencyKeyReused("request_id was already used with other parameters")
            return await uow.preferences.get(user_id) or Preferences(user_id=user_id)
        prefs = await uow.preferences.get(user_id, for_update=True)
        if prefs is None:
            await uow.preferences.insert_blank(user_id)
            prefs = await uow.preferences.get(user_id, for_update=True)
        if update.etag and update.etag != prefs.etag:
            raise errors.StalePreferences()
        _apply(prefs, paths, update.values, svc.webhook_private_targets)
        if caller.user_id == user_id:
            # The roles of the user's own current token (the gateway revokes tokens whose roles
            # changed, and tells this service the new ones): a demoted agent stops being told
            # what agents are.
            prefs.roles = frozenset(caller.roles & KNOWN_ROLES)
        prefs.version += 1
        prefs.update_time = svc.clock()
        await uow.preferences.save(prefs)
        await uow.request_log.add(request_id, "UpdatePreferences", fingerprint, prefs.etag.encode())
        await uow.commit()
    return prefs


def switch(event_type: str, channel, enabled: bool) -> ChannelSwitch:
    return ChannelSwitch(event_type, channel, enabled)


# --- history -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    next_page_token: str
    unread_count: int


async def list_notifications(
    svc: Services, caller: Caller, user_id: str, unread_only: bool, page_size: int, page_token: str
) -> NotificationPage:
    """Newest first, keyset-paginated on (created_at, id)."""
    user_id = _check_uuid(user_id, "user_id")
    _require_self_or_privileged(caller, user_id)
    size = _page_size(page_size)
    scope = f"{user_id}:{int(unread_only)}"
    after = _decode_token(page_token, scope)
    async with svc.uow() as uow:
        rows = await uow.notifications.page(user_id, unread_only, after, size + 1)
        unread = await uow.notifications.unread_count(user_id)
    more = len(rows) > size
    rows = rows[:size]
    token = _encode_token(scope, rows[-1].created_at, rows[-1].id) if more else ""
    return NotificationPage(rows, token, unread)


async def mark_notifications_read(
    svc: Services, caller: Caller, request_id: str, fingerprint: str, user_id: str, ids: list[str]
) -> int:
    """Marks the given (or all) unread notifications of the user read; returns how many changed."""
    _require_request_id(request_id)
    user_id = _check_uuid(user_id, "user_id")
    if caller.user_id != user_id and not caller.is_service:
        raise errors.NotOwnNotifications()
    if len(ids) > 500:
        raise InvalidArgument("at most 500 ids", reason="INVALID_IDS")
    wanted = [_check_uuid(i, "ids") for i in ids]
    async with svc.uow() as uow:
        await uow.request_log.lock(request_id, "MarkNotificationsRead")
        seen = await uow.request_log.find(request_id, "MarkNotificationsRead")
        if seen is not None:
            if seen[0] != fingerprint:
                raise IdempotencyKeyReused("request_id was already used with other parameters")
            return int(seen[1].decode())
        marked = await uow.notifications.mark_read(user_id, wanted)
        await uow.request_log.add(request_id, "MarkNotificationsRead", fingerprint, str(marked).encode())
        await uow.commit()
    return marked


# --- announcements -----------------------------------------------------------------------------


async def send_announcement(
    svc: Services,
    caller: Caller,
    request_id: str,
    fingerprint: str,
    subject: str,
    body: str,
    roles: list[str],
    user_ids: list[str],
) -> Announcement:
    """Stores the announcement PENDING; the announcement worker delivers it in batches."""
    _require_operator(caller)
    _require_request_id(request_id)
    if not 1 <= len(subject) <= 200:
        raise InvalidArgument("subject must be 1-200 characters", reason="INVALID_SUBJECT")
    if not validation.one_line(subject):  # it becomes each e-mail's Subject header
        raise InvalidArgument(
            "subject must be one line, without CR, LF, U+2028, U+2029 or other line breaks", reason="INVALID_SUBJECT"
        )
    if not 1 <= len(body) <= 10_000:
        raise InvalidArgument("body must be 1-10000 characters", reason="INVALID_BODY")
    if len(user_ids) > 10_000:
        raise InvalidArgument("at most 10000 user_ids", reason="INVALID_FILTER")
    announcement = Announcement(
        id=svc.new_id(),
        request_id=request_id,
        fingerprint=fingerprint,
        subject=subject,
        body=body,
        roles=sorted(set(roles)),
        user_ids=sorted({_check_uuid(u, "filter.user_ids") for u in user_ids}),
        created_by=caller.user_id or "system",
        created_at=svc.clock(),
    )
    async with svc.uow() as uow:
        if await uow.announcements.add(announcement):
            await uow.commit()
            return announcement
        original = await uow.announcements.by_request_id(request_id)
    if original.fingerprint != fingerprint:
        raise IdempotencyKeyReused("request_id was already used with other parameters")
    return original


async def get_announcement(svc: Services, caller: Caller, announcement_id: str) -> Announcement:
    _require_operator(caller)
    announcement_id = _check_uuid(announcement_id, "id")
    async with svc.uow() as uow:
        found = await uow.announcements.get(announcement_id)
    if found is None:
        raise errors.AnnouncementNotFound()
    return found


# --- dead letters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterPage:
    dead_letters: list[DeadLetter]
    next_page_token: str


async def list_dead_letters(
    svc: Services, caller: Caller, event_type: str, states: list[DeadLetterState], page_size: int, page_token: str
) -> DeadLetterPage:
    """Oldest first; by default those still waiting for an operator."""
    _require_operator(caller)
    size = _page_size(page_size)
    wanted = sorted({s.value for s in states or [DeadLetterState.PENDING, DeadLetterState.REPLAY_FAILED]})
    scope = f"{event_type}:{','.join(wanted)}"
    after = _decode_token(page_token, scope)
    async with svc.uow() as uow:
        rows = await uow.dead_letters.page(event_type, wanted, after, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    token = _encode_token(scope, rows[-1].create_time, rows[-1].id) if more else ""
    return DeadLetterPage(rows, token)


async def replay_dead_letter(
    svc: Services, caller: Caller, request_id: str, fingerprint: str, dead_letter_id: str, decode
) -> DeadLetter:
    """Processes the dead letter's event again (deduplicated by event id like any delivery) and
    records the outcome: REPLAYED, or REPLAY_FAILED with the new error."""
    from notifications.domain.errors import EventRejected

    _require_operator(caller)
    _require_request_id(request_id)
    dead_letter_id = _check_uuid(dead_letter_id, "id")
    async with svc.uow() as uow:
        seen = await uow.request_log.find(request_id, "ReplayDeadLetter")
        letter = await uow.dead_letters.get(dead_letter_id)
    if letter is None:
        raise errors.DeadLetterNotFound()
    if seen is not None:
        if seen[0] != fingerprint:
            raise IdempotencyKeyReused("request_id was already used with other parameters")
        return letter
    if letter.state is DeadLetterState.REPLAYED:
        raise errors.DeadLetterAlreadyReplayed()
    try:
        await record_event(svc, decode(letter.envelope))
        outcome, error = DeadLetterState.REPLAYED, letter.error
    except EventRejected as rejected:
        outcome, error = DeadLetterState.REPLAY_FAILED, str(rejected)
    async with svc.uow() as uow:
        await uow.request_log.lock(request_id, "ReplayDeadLetter")
        if await uow.request_log.find(request_id, "ReplayDeadLetter") is None:
            current = await uow.dead_letters.get(dead_letter_id, for_update=True)
            if current.state is not DeadLetterState.REPLAYED:
                current.state, current.error = outcome, error
                current.replay_time, current.attempts = svc.clock(), current.attempts + 1
                await uow.dead_letters.save_state(current)
            await uow.request_log.add(request_id, "ReplayDeadLetter", fingerprint, current.state.value.encode())
            await uow.commit()
            return current
    async with svc.uow() as uow:
        return await uow.dead_letters.get(dead_letter_id)
