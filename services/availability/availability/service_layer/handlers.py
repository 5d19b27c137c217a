"""Use cases of the availability service, one function per RPC. Each runs in one short transaction
(retried as a whole on deadlock, lock timeout or serialization failure) and leaves the database in
a defined state whatever happens: either everything it did committed, or nothing did."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from availability.domain import events
from availability.domain.calendar import Busy, check_hold_ranges
from availability.domain.calendar import guarded as calendar_ranges
from availability.domain.errors import (
    BlockNotFound,
    HoldExpired,
    HoldNotFound,
    IllegalHoldTransition,
    NotPlaceOwner,
    PlaceInactive,
    PlaceNotFound,
    ScheduleRefusal,
    SlotUnavailable,
    StaleEtag,
    invalid,
)
from availability.domain.model import Hold, HoldState, Place, TimeRange, new_id, sorted_disjoint, utcnow
from kit.db import LOCK_NOT_AVAILABLE, sqlstate_of, with_retries
from kit.errors import IdempotencyKeyReused, InvalidArgument, PermissionDenied
from kit.identity import AGENT, HOST, SERVICE, Caller

log = logging.getLogger("availability.handlers")
T = TypeVar("T")


class Memo(Generic[T]):
    """What this process saw last (places its holds read, holds it made, ranges taken), for the
    fast paths, the oldest forgotten first. Never trusted: each fast statement writes only if the
    row is still as remembered, and a range seen taken is refused only by what a read finds."""

    def __init__(self, size: int = 10_000):
        self._items: OrderedDict[str, T] = OrderedDict()
        self._size = size

    def get(self, key: str) -> T | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def pop(self, key: str) -> T | None:
        return self._items.pop(key, None)

    def put(self, key: str, item: T) -> None:
        self._items[key] = item
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass
class Deps:
    """What the handlers need, built by bootstrap: a unit-of-work factory, the caches, a clock."""

    uow: Callable[[], Any]
    place_cache: Any
    search_cache: Any
    clock: Callable[[], datetime] = utcnow
    places_seen: Memo[Place] = field(default_factory=Memo)
    holds_made: Memo[Hold] = field(default_factory=Memo)
    # How HoldSlots answered: "fast" (one statement), "full" (the whole transaction); "confirm
    # fast": ConfirmHolds done in one statement.
    hold_paths: Counter = field(default_factory=Counter)
    # Ranges (place, calendar range) this process last saw taken: held here or refused. A request
    # for one reads what occupies it first (see _hold_at_once).
    ranges_taken: Memo[bool] = field(default_factory=Memo)


# ---------------------------------------------------------------- places


async def create_place(deps: Deps, request_id: str, fingerprint: str, place: Place, caller: Caller) -> Place:
    """Create a place owned by the caller (a host, agent or service)."""
    if not caller.user_id or not ({HOST, AGENT, SERVICE} & caller.roles):
        raise PermissionDenied("only hosts may create places", reason="HOST_ROLE_REQUIRED")
    place.validate()
    place.id, place.owner_id = new_id(), caller.user_id

    async def attempt() -> Place:
        async with deps.uow() as uow:
            earlier = await uow.requests.claim(request_id, "CreatePlace", fingerprint, place.id)
            if earlier:
                return await _existing_place(uow, earlier)
            await uow.places.add(place)
            uow.events.append(events.PlaceCreated(place))
            await uow.commit()
            return place

    created = await with_retries(attempt)
    await deps.search_cache.bump()  # a search cached before it must find the new place now
    return created


async def _existing_place(uow, place_id: str) -> Place:
    found = await uow.places.get(place_id)
    if found is None:
        raise PlaceNotFound(place_id)
    return found


async def get_places(deps: Deps, ids: list[str]) -> tuple[list[Place], list[str]]:
    """Places by id in first-occurrence order (read-through cache), and the ids that match none."""
    wanted = list(dict.fromkeys(ids))
    found = await deps.place_cache.get_many(wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        async with deps.uow() as uow:
            loaded = await uow.places.get_many(missing)
        await deps.place_cache.put(loaded)
        found.update({p.id: p for p in loaded})
    return [found[i] for i in wanted if i in found], [i for i in wanted if i not in found]


async def get_place(deps: Deps, place_id: str) -> Place:
    """One place, active or not."""
    places, _ = await get_places(deps, [place_id])
    if not places:
        raise PlaceNotFound(place_id)
    return places[0]


# Mutable fields: proto path -> domain attribute (schedule sub-paths are handled separately).
MUTABLE = {
    "title",
    "description",
    "city",
    "address",
    "capacity",
    "unit_count",
    "price_per_hour",
    "time_zone",
    "booking_mode",
    "photo_urls",
    "deposit_policy",
    "cancellation_policy",
    "schedule",
}


def check_mask(paths: list[str], caller: Caller) -> list[str]:
    """The effective paths of an update mask; INVALID_UPDATE_MASK for unknown or output-only ones."""
    from availability.domain.model import Schedule

    if not paths:
        raise invalid("update_mask must name at least one field", "INVALID_UPDATE_MASK", "update_mask")
    if "*" in paths:
        return sorted(MUTABLE)
    schedule_fields = {f.name for f in dataclasses.fields(Schedule)}
    for path in paths:
        if path in MUTABLE or (path.startswith("schedule.") and path[9:] in schedule_fields):
            continue
        if path == "active":
            if not caller.is_privileged:
                raise NotPlaceOwner()
            continue
        raise invalid(f"update_mask: {path!r} is not a mutable field of Place", "INVALID_UPDATE_MASK", "update_mask")
    return list(dict.fromkeys(paths))


def _apply(place: Place, patch: Place, paths: list[str]) -> None:
    for path in paths:
        if path.startswith("schedule."):
            name = path[9:]
            setattr(place.schedule, name, getattr(patch.schedule, name))
        else:
            setattr(place, path, getattr(patch, path))


async def update_place(
    deps: Deps, request_id: str, fingerprint: str, patch: Place, paths: list[str], etag: str, caller: Caller
) -> Place:
    """Replace the masked fields of a place; honours the etag."""
    paths = check_mask(paths, caller)

    async def attempt() -> Place:
        async with deps.uow() as uow:
            earlier = await uow.requests.claim(request_id, "UpdatePlace", fingerprint, patch.id)
            if earlier:
                return await _existing_place(uow, earlier)
            place = await _owned_place(uow, patch.id, caller, etag)
            units_before = place.unit_count
            _apply(place, patch, paths)
            place.validate()
            place.version += 1
            await uow.places.save(place)
            if place.unit_count > units_before:  # a block covers every unit, the new ones too
                await uow.calendar.extend_blocks(place.id, units_before, place.unit_count, deps.clock())
            uow.events.append(events.PlaceUpdated(place, paths))
            if any(p.startswith("schedule") or p in ("active", "unit_count", "time_zone") for p in paths):
                uow.events.append(events.CalendarChanged(place.id, "SCHEDULE_CHANGED"))
            await uow.commit()
            return place

    place = await with_retries(attempt)
    await _place_changed(deps, place)
    return place


async def _owned_place(uow, place_id: str, caller: Caller, etag: str = "") -> Place:
    place = await uow.places.get(place_id, for_update=True)
    if place is None:
        raise PlaceNotFound(place_id)
    if not place.may_be_changed_by(caller.user_id, caller.is_privileged):
        raise NotPlaceOwner(place_id)
    if etag and etag != place.etag:
        raise StaleEtag(place_id)
    return place


async def _place_changed(deps: Deps, place: Place) -> None:
    await deps.place_cache.forget(place)
    await deps.search_cache.bump()


async def delete_place(
    deps: Deps, request_id: str, fingerprint: str, place_id: str, etag: str, caller: Caller
) -> Place:
    """Soft-delete: the place stops being searchable and holdable; its calendar stays."""

    async def attempt() -> Place:
        async with deps.uow() as uow:
            earlier = await uow.requests.claim(request_id, "DeletePlace", fingerprint, place_id)
            if earlier:
                return await _existing_place(uow, earlier)
            place = await _owned_place(uow, place_id, caller, etag)
            if place.active:
                place.active = False
                place.version += 1
                await uow.places.save(place)
                uow.events.append(events.PlaceUpdated(place, ["active"]))
            await uow.commit()
            return place

    place = await with_retries(attempt)
    await _place_changed(deps, place)
    return place


async def apply_rating(
    deps: Deps, request_id: str, fingerprint: str, place_id: str, rating: int, removed: bool
) -> Place:
    """Add (or remove) one review's rating to the place's aggregate, once per review event."""
    if not 1 <= rating <= 5:
        raise invalid("rating must be 1-5", field="rating")

    async def attempt() -> Place:
        async with deps.uow() as uow:
            earlier = await uow.requests.claim(request_id, "ApplyRating", fingerprint, place_id)
            if earlier:
                return await _existing_place(uow, earlier)
            place = await uow.places.get(place_id, for_update=True)
            if place is None:
                raise PlaceNotFound(place_id)
            place.apply_rating(rating, removed)
            await uow.places.save(place)
            await uow.commit()
            return place

    place = await with_retries(attempt)
    await _place_changed(deps, place)
    return place


# ---------------------------------------------------------------- holds and blocks


async def _expire_freed(uow, hold_ids: list[str], now: datetime) -> None:
    """Flip holds some of whose rows were just taken out for being expired (only those overlapping
    a new hold: no global cleanup): their state, their other rows, their events. A HELD hold is only
    ever flipped once past its expiry, so ConfirmHold (which re-checks the expiry under the hold's
    row lock) and this never both win."""
    if hold_ids:
        expired = await uow.holds.expire(hold_ids, now)
        await _free(uow, expired, lambda h: events.HoldExpired(h, h.expires_at))


async def _free(uow, holds: list[Hold], event: Callable[[Hold], object]) -> None:
    _announce_freed(uow, holds, await uow.calendar.free([h.id for h in holds]), event)


def _announce_freed(uow, holds: list[Hold], freed, event: Callable[[Hold], object]) -> None:
    by_place: dict[str, set[TimeRange]] = {}
    by_hold = {h.id: h for h in holds}
    for hold_id, start, end in freed:
        by_place.setdefault(by_hold[hold_id].place_id, set()).add(TimeRange(start, end))
    for hold in holds:
        uow.events.append(event(hold))
    for place_id, ranges in by_place.items():
        uow.events.append(events.CalendarChanged(place_id, "FREED", sorted(ranges)))


def _same_request(existing: Hold, kind: str, fingerprint: str) -> Hold:
    if existing.kind != kind or existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"request_id {existing.request_id!r} was already used with other parameters")
    return existing


def _holdable(place: Place | None, place_id: str) -> Place:
    if place is None:
        raise PlaceNotFound(place_id)
    if not place.active:
        raise PlaceInactive(place_id)
    return place


async def _occupy(uow, hold: Hold, rows: list[tuple[TimeRange, TimeRange]], unit_count: int, now: datetime) -> None:
    """Put (during, booked) rows on the first free `hold.units` units, or raise SlotUnavailable.
    The exclusion constraint decides (ON CONFLICT DO NOTHING): no check-then-insert. Writers of
    the place are serialized by the advisory lock, so the constraint never has to wait or deadlock.
    Expired holds still occupy their rows until flipped: each insert first takes the expired holds'
    rows in its way out of the calendar, in the same statement."""
    needed = {booked.start: hold.units for _, booked in rows}
    for unit in range(unit_count):
        pending = [(d, b) for d, b in rows if needed[b.start] > 0]
        if not pending:
            return
        inserted, freed = await uow.calendar.free_expired_and_insert(hold, unit, pending, now)
        await _expire_freed(uow, freed, now)
        for start in inserted:
            needed[start] -= 1
    short = [d for d, b in rows if needed[b.start] > 0]
    if short:
        entries = await uow.calendar.live_entries(hold.place_id, short, now)
        raise SlotUnavailable(hold.place_id, _conflicts(entries, short))


async def hold_slots(
    deps: Deps,
    request_id: str,
    fingerprint: str,
    place_id: str,
    ranges: list[TimeRange],
    units: int,
    ttl: timedelta,
    booking_id: str,
    holder_id: str,
) -> Hold:
    """Hold every range for `units` units, or nothing; idempotent by request id."""
    ranges = sorted_disjoint(ranges, "ranges", 60)
    if not holder_id:
        raise invalid("holder_id is required", field="holder_id")
    if not timedelta(minutes=1) <= ttl <= timedelta(hours=24):
        raise invalid("ttl must be between 1 minute and 24 hours", field="ttl")
    if units < 1:
        raise invalid("units must be at least 1", field="units")

    async def attempt() -> tuple[Hold, bool]:
        async with deps.uow() as uow:
            now = deps.clock()
            hold = _new_hold(request_id, fingerprint, place_id, booking_id, holder_id, ranges, units, now + ttl)
            # One round trip: the place's advisory lock, the hold (unless the request id exists), the place.
            added, place = await uow.holds.lock_place_and_add(hold)
            if place is not None:
                deps.places_seen.put(place.id, place)
            if not added:
                return _same_request(await uow.holds.by_request_id(request_id), "hold", fingerprint), False
            place = _holdable(place, place_id)
            if units > place.unit_count:
                raise invalid(f"units must be 1-{place.unit_count} for this place", field="units")
            s = place.schedule
            check_hold_ranges(s, place.zone, ranges, now)
            guarded = calendar_ranges(ranges, s.buffer_before, s.buffer_after)
            await _occupy(uow, hold, list(zip(guarded, ranges, strict=True)), place.unit_count, now)
            uow.events += [events.HoldCreated(hold), events.CalendarChanged(place_id, "OCCUPIED", guarded)]
            await uow.commit()
            return hold, True

    held = None
    if units == 1 and len(ranges) == 1:
        held = await _hold_at_once(deps, request_id, fingerprint, place_id, ranges[0], ttl, booking_id, holder_id)
    if held is not None:
        hold, created = held, True
        deps.hold_paths["fast"] += 1
    else:
        hold, created = await with_retries(attempt)
        deps.hold_paths["full"] += 1
    if created:
        deps.holds_made.put(hold.id, hold)
        await deps.search_cache.bump()
    return hold


def _new_hold(
    request_id: str,
    fingerprint: str,
    place_id: str,
    booking_id: str,
    holder_id: str,
    ranges: list[TimeRange],
    units: int,
    expires_at: datetime,
) -> Hold:
    return Hold(
        id=new_id(),
        request_id=request_id,
        fingerprint=fingerprint,
        kind="hold",
        place_id=place_id,
        booking_id=booking_id,
        holder_id=holder_id,
        ranges=ranges,
        units=units,
        state=HoldState.HELD,
        expires_at=expires_at,
    )


def _conflicts(entries: list[tuple[int, datetime, datetime]], wanted: list[TimeRange]) -> list[TimeRange]:
    """What occupies each wanted (buffered) range, for SlotUnavailable: the live entries overlapping
    it, or the range itself when none is found (a unit taken meanwhile)."""
    busy = Busy.of(entries)
    return sorted({c for d in wanted for c in (busy.conflicts(d) or [d])})


async def _hold_at_once(
    deps: Deps,
    request_id: str,
    fingerprint: str,
    place_id: str,
    booked: TimeRange,
    ttl: timedelta,
    booking_id: str,
    holder_id: str,
) -> Hold | None:
    """HoldSlots' fast path for one range on a one-unit place this process has seen: the rules
    checked against the remembered place, then one statement that writes the hold, its calendar
    row and its events only if the place is unchanged and the range free, sent without BEGIN/COMMIT
    when the lock probe does not measure it. The place's advisory lock is then held for that one
    statement only, not across round trips. Answers the hold, raises SlotUnavailable for a range
    live entries occupy, or returns None: the full transaction decides (a repeated request id, a
    changed place, expired holds in the way, a rule the remembered place refuses)."""
    place = deps.places_seen.get(place_id)
    if place is None or place.unit_count != 1 or not place.active:
        return None
    now = deps.clock()
    s = place.schedule
    try:
        check_hold_ranges(s, place.zone, [booked], now)
    except (ScheduleRefusal, InvalidArgument):
        return None  # the place may have changed since: the full transaction judges by the current one
    during = calendar_ranges([booked], s.buffer_before, s.buffer_after)[0]
    taken_key = f"{place_id}|{during.start.isoformat()}|{during.end.isoformat()}"
    if deps.ranges_taken.get(taken_key):
        # Last seen taken (a contended slot): a read of what occupies it answers a refusal without
        # the place's advisory lock, so the callers who lose do not queue on it ahead of a winner.
        # The read decides, never the memo: it refuses only for a live entry over the booked time
        # itself, taken whatever the place's buffers are now (the remembered place may be behind).
        # A range found free (released, expired), only its buffers touched, or this request id's
        # own hold goes on as usual.
        replay, entries = await _replay_or_conflicts(deps, place_id, request_id, during)
        if not replay and any(start < booked.end and booked.start < end for _, start, end in entries):
            deps.hold_paths["refused by a read"] += 1
            raise SlotUnavailable(place_id, _conflicts(entries, [during]))
        deps.ranges_taken.pop(taken_key)
        if replay:
            return None
    hold = _new_hold(request_id, fingerprint, place_id, booking_id, holder_id, [booked], 1, now + ttl)

    async def attempt() -> str:
        async with deps.uow() as uow:
            uow.lone_statement()
            uow.events += [events.HoldCreated(hold), events.CalendarChanged(place_id, "OCCUPIED", [during])]
            outcome = await uow.holds.hold_at_once(hold, place.version, during, now, uow.events_in_statement)
            if outcome == "held":
                await uow.commit()
            return outcome

    outcome = await with_retries(attempt)
    if outcome == "held":
        deps.ranges_taken.put(taken_key, True)
        return hold
    if outcome == "taken":
        replay, entries = await _replay_or_conflicts(deps, place_id, request_id, during)
        if entries and not replay:
            deps.ranges_taken.put(taken_key, True)
            raise SlotUnavailable(place_id, _conflicts(entries, [during]))
    return None


async def _replay_or_conflicts(
    deps: Deps, place_id: str, request_id: str, during: TimeRange
) -> tuple[bool, list[tuple[int, datetime, datetime]]]:
    """One read: whether `request_id` was used already, and the live entries occupying `during`."""
    async with deps.uow() as uow:
        uow.lone_statement()
        return await uow.holds.replay_or_conflicts(place_id, request_id, during, deps.clock())


async def get_hold(deps: Deps, hold_id: str) -> Hold:
    async with deps.uow() as uow:
        hold = await uow.holds.get(hold_id)
    if hold is None or hold.kind != "hold":
        raise HoldNotFound(hold_id)
    return hold


async def confirm_hold(deps: Deps, request_id: str, fingerprint: str, hold_id: str) -> Hold:
    """HELD -> CONFIRMED (permanent); confirming again returns the hold unchanged."""
    made = deps.holds_made.pop(hold_id)
    if made is not None and made.kind == "hold":
        confirmed = await _confirm_at_once(deps, request_id, fingerprint, made)
        if confirmed is not None:
            deps.hold_paths["confirm fast"] += 1
            return confirmed

    async def attempt() -> Hold:
        async with deps.uow() as uow:
            hold = await uow.holds.claim_and_lock(request_id, "ConfirmHold", fingerprint, hold_id)
            if hold is None or hold.kind != "hold":
                raise HoldNotFound(hold_id)
            state = hold.effective_state(deps.clock())
            if state is HoldState.EXPIRED:
                raise HoldExpired(hold_id)
            if state is HoldState.RELEASED:
                raise IllegalHoldTransition(hold_id, state.name, "confirm")
            if state is HoldState.HELD:
                hold.state, hold.expires_at = HoldState.CONFIRMED, None
                await uow.holds.save_state_and_confirm_rows(hold)
                uow.events.append(events.HoldConfirmed(hold))
            await uow.commit()
            return hold

    return await with_retries(attempt)


async def _confirm_at_once(deps: Deps, request_id: str, fingerprint: str, made: Hold) -> Hold | None:
    """ConfirmHold's fast path for a hold this process made: one statement that confirms it, makes
    its rows permanent, records the request id and writes the event, only if the hold is still HELD
    and unexpired (the statement checks; the remembered copy only supplies the event's fields), sent
    without BEGIN/COMMIT unless the lock probe measures it. None: the full transaction answers (a
    repeated request id, a hold released, expired or confirmed meanwhile)."""
    hold = dataclasses.replace(made, state=HoldState.CONFIRMED, expires_at=None)

    async def attempt() -> bool:
        async with deps.uow() as uow:
            uow.lone_statement()
            uow.events.append(events.HoldConfirmed(hold))
            now, events_of_uow = deps.clock(), uow.events_in_statement
            if not await uow.holds.confirm_at_once(hold, request_id, fingerprint, now, events_of_uow):
                return False
            await uow.commit()
            return True

    return hold if await with_retries(attempt) else None


async def release_hold(deps: Deps, request_id: str, fingerprint: str, hold_id: str, reason: str) -> Hold:
    """Free a HELD or CONFIRMED hold; releasing a RELEASED or EXPIRED one returns it unchanged."""
    if len(reason) > 500:
        raise invalid("reason must be at most 500 characters", field="reason")

    async def attempt() -> tuple[Hold, bool]:
        async with deps.uow() as uow:
            hold = await uow.holds.claim_and_lock(request_id, "ReleaseHold", fingerprint, hold_id)
            if hold is None or hold.kind != "hold":
                raise HoldNotFound(hold_id)
            state = hold.effective_state(deps.clock())
            changed = state in (HoldState.HELD, HoldState.CONFIRMED)
            if changed:
                hold.state, hold.reason = HoldState.RELEASED, reason
                freed = await uow.holds.save_state_and_free_rows(hold)
                _announce_freed(uow, [hold], freed, events.HoldReleased)
            await uow.commit()
            return hold, changed

    hold, changed = await with_retries(attempt)
    if changed:
        await deps.search_cache.bump()
    return hold


async def _check_owner(deps: Deps, place_id: str, caller: Caller) -> Place:
    """Ownership never changes, so it may be checked in its own short read before the write."""
    async with deps.uow() as uow:
        place = await uow.places.get(place_id)
    if place is None:
        raise PlaceNotFound(place_id)
    if not place.may_be_changed_by(caller.user_id, caller.is_privileged):
        raise NotPlaceOwner(place_id)
    return place


async def block_time(
    deps: Deps, request_id: str, fingerprint: str, place_id: str, ranges: list[TimeRange], reason: str, caller: Caller
) -> Hold:
    """Make ranges unavailable on every unit of a place (owner or agent)."""
    ranges = sorted_disjoint(ranges, "ranges", 100)
    if len(reason) > 500:
        raise invalid("reason must be at most 500 characters", field="reason")

    async def attempt() -> tuple[Hold, bool]:
        async with deps.uow() as uow:
            await uow.holds.lock_place(place_id)
            place = await uow.places.get(place_id)
            if place is None:
                raise PlaceNotFound(place_id)
            if not place.may_be_changed_by(caller.user_id, caller.is_privileged):
                raise NotPlaceOwner(place_id)
            block = Hold(
                id=new_id(),
                request_id=request_id,
                fingerprint=fingerprint,
                kind="block",
                place_id=place_id,
                booking_id="",
                holder_id=caller.user_id,
                ranges=ranges,
                units=place.unit_count,
                state=HoldState.ACTIVE,
                expires_at=None,
                reason=reason,
            )
            if not await uow.holds.add_if_new(block):
                return _same_request(await uow.holds.by_request_id(request_id), "block", fingerprint), False
            now = deps.clock()
            await _occupy(uow, block, [(r, r) for r in ranges], place.unit_count, now)
            uow.events += [events.TimeBlocked(block), events.CalendarChanged(place_id, "OCCUPIED", ranges)]
            await uow.commit()
            return block, True

    block, created = await with_retries(attempt)
    if created:
        await deps.search_cache.bump()
    return block


async def unblock_time(deps: Deps, request_id: str, fingerprint: str, block_id: str, caller: Caller) -> Hold:
    """Remove a block; removing a REMOVED block returns it unchanged."""
    async with deps.uow() as uow:
        found = await uow.holds.get(block_id)
    if found is None or found.kind != "block":
        raise BlockNotFound(block_id)
    await _check_owner(deps, found.place_id, caller)

    async def attempt() -> tuple[Hold, bool]:
        async with deps.uow() as uow:
            await uow.requests.claim(request_id, "UnblockTime", fingerprint, block_id)
            block = await uow.holds.get(block_id, for_update=True)
            changed = block.state is HoldState.ACTIVE
            if changed:
                block.state = HoldState.REMOVED
                await uow.holds.save_state(block)
                await _free(uow, [block], events.TimeUnblocked)
            await uow.commit()
            return block, changed

    block, changed = await with_retries(attempt)
    if changed:
        await deps.search_cache.bump()
    return block


SWEEP_LOCK_WAIT_MS = 50


async def sweep_expired_holds(deps: Deps, batch_size: int = 100) -> int:
    """Free one batch of expired holds nobody else is handling (FOR UPDATE SKIP LOCKED)."""
    try:
        async with deps.uow() as uow:
            now = deps.clock()
            ids = await uow.holds.expiring(now, batch_size)
            if not ids:
                return 0
            expired = await uow.holds.expire(ids, now)
            # Hold rows, then their calendar rows: HoldSlots takes an expired hold's calendar rows
            # first (_occupy), then its hold row. Waiting for such a row here would be a deadlock
            # (found after a second, while the place's writers queue): give the batch up at once.
            freed = await uow.calendar.free([h.id for h in expired], lock_wait_ms=SWEEP_LOCK_WAIT_MS)
            _announce_freed(uow, expired, freed, lambda h: events.HoldExpired(h, h.expires_at))
            await uow.commit()
    except DBAPIError as error:
        if sqlstate_of(error) != LOCK_NOT_AVAILABLE:
            raise
        log.info("a hold is being freed by HoldSlots: the sweeper's batch waits for its next pass")
        return 0
    if expired:
        await deps.search_cache.bump()
    return len(expired)
