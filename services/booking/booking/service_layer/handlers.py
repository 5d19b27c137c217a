"""One function per RPC. Each checks the caller's rights, runs short transactions (never across a
gRPC call) and hands multi-service work to the saga in flows.py."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from booking.domain import model
from booking.domain.errors import (
    BookingNotFound,
    BookingPaymentDeclined,
    FlowInProgress,
    IllegalStatusTransition,
    NotBookingClient,
    NotBookingParty,
    NotOperator,
    NotPlaceOwner,
    PlaceInactive,
    ReviewAlreadyExists,
    ReviewNotFound,
    SlotAvailable,
    SlotUnavailable,
    StaleEtag,
    TooManyPending,
    WaitlistEntryNotFound,
    WaitlistOfferNotActive,
    invalid,
)
from booking.domain.model import (
    Booking,
    BookingMode,
    Place,
    Review,
    SagaState,
    Status,
    TimeRange,
    WaitlistEntry,
    WaitState,
    fingerprint,
    normalize_ranges,
)
from booking.service_layer.flows import SERIES_NOT_BOOKED, BookingSaga, Deps
from booking.service_layer.pagination import decode_page_token, encode_page_token
from booking.service_layer.queries import ListQuery
from kit import page_tokens
from kit.db import with_retries
from kit.errors import Conflict, FailedPrecondition, IdempotencyKeyReused, Unauthenticated, Unavailable
from kit.identity import Caller
from kit.timezones import iana_zone

log = logging.getLogger(__name__)


# ----- input checks ---------------------------------------------------------------------------
def require_request_id(request_id: str) -> None:
    if not 1 <= len(request_id) <= 64:
        raise invalid("INVALID_REQUEST_ID", "request_id is required (1-64 characters)")


def require_uuid(value: str, field: str, reason: str = "INVALID_ID") -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise invalid(reason, f"{field} must be a UUID") from None


def require_user(caller: Caller) -> str:
    if not caller.user_id:
        raise Unauthenticated("no authenticated caller")
    return caller.user_id


def _page_size(size: int) -> int:
    if size == 0:
        return 50
    if not 1 <= size <= 200:
        raise invalid("INVALID_PAGE_SIZE", "page_size must be 1-200")
    return size


@dataclass
class CreateBooking:
    request_id: str
    place_id: str
    ranges: list[TimeRange]
    guests: int
    units: int
    payment_token: str
    note: str
    waitlist_entry_id: str = ""  # the caller's OFFERED waitlist entry whose hold this booking takes


def _check_create(cmd: CreateBooking, place: Place | None = None) -> tuple[TimeRange, ...]:
    require_request_id(cmd.request_id)
    require_uuid(cmd.place_id, "place_id")
    ranges = normalize_ranges(cmd.ranges)
    if cmd.guests < 1:
        raise invalid("INVALID_GUESTS", "guests must be at least 1")
    if cmd.units < 1:
        raise invalid("INVALID_UNITS", "units must be at least 1")
    if len(cmd.note) > 1000:
        raise invalid("INVALID_NOTE", "note is at most 1000 characters")
    if len(cmd.payment_token) > 255:
        raise invalid("INVALID_PAYMENT_METHOD_TOKEN", "payment_method_token is at most 255 characters")
    if place is not None:
        if not place.active:
            raise PlaceInactive(place.id)
        if cmd.guests > place.capacity:
            raise invalid("INVALID_GUESTS", f"guests must be 1-{place.capacity} for this place")
        if cmd.units > place.unit_count:
            raise invalid("INVALID_UNITS", f"units must be 1-{place.unit_count} for this place")
        if place.booking_mode is BookingMode.INSTANT and not cmd.payment_token:
            raise invalid("INVALID_PAYMENT_METHOD_TOKEN", "payment_method_token is required for instant booking")
    return ranges


async def _replay(deps: Deps, existing: Booking, fp: str) -> Booking:
    """A retry of CreateBooking: the same answer as the first time (the booking, or its failure)."""
    if existing.fingerprint != fp:
        raise IdempotencyKeyReused("this request_id was already used with other parameters")
    if existing.status is Status.REJECTED and existing.failure_reason == "slot_unavailable":
        raise SlotUnavailable("the requested time is taken", place_id=existing.place_id)
    if existing.status is Status.PAYMENT_FAILED:
        raise BookingPaymentDeclined(existing.failure_reason or "card_declined")
    if existing.mode is BookingMode.INSTANT and existing.failure_reason:
        # The first attempt ended in a refusal or an outage: a retry gets that same answer, never
        # the dead booking dressed up as a success.
        reason = existing.failure_reason
        if existing.status is Status.EXPIRED and reason.endswith("_unavailable"):
            peer = reason.removesuffix("_unavailable")
            raise Unavailable(
                f"the {peer} service was unavailable, so this booking was not made; retry with a new request id",
                reason=reason.upper(),
            )
        if existing.status is Status.REJECTED:
            raise FailedPrecondition(f"the booking was refused: {reason}", reason=reason.upper())
    if existing.mode is BookingMode.INSTANT and existing.status is Status.HELD:
        # Its saga is still running (or being recovered after an outage): not a success yet.
        raise Unavailable(
            "this booking is still being processed; retry with the same request id to learn its outcome",
            reason="BOOKING_IN_PROGRESS",
        )
    if existing.mode is BookingMode.INSTANT and existing.status is Status.EXPIRED:
        raise Unavailable(
            "this booking was not made (it could not be completed in time); retry with a new request id",
            reason="BOOKING_NOT_MADE",
        )
    return existing


async def create_booking(deps: Deps, caller: Caller, cmd: CreateBooking) -> Booking:
    """Book a place: REQUEST places -> REQUESTED; INSTANT places run the hold -> pay -> confirm saga."""
    return await admitted(deps, lambda: _create_booking(deps, caller, cmd))


async def admitted(deps: Deps, flow):
    """Run a flow under admission control (see service_layer/admission.py)."""
    if deps.admission is None:
        return await flow()
    return await deps.admission.run(flow)


async def _create_booking(deps: Deps, caller: Caller, cmd: CreateBooking) -> Booking:
    client_id = require_user(caller)
    _check_create(cmd)
    place = await deps.availability.get_place(cmd.place_id)
    ranges = _check_create(cmd, place)
    fp = fingerprint(cmd.place_id, ranges, cmd.guests, cmd.units, cmd.note, bool(cmd.payment_token))
    if cmd.waitlist_entry_id:
        fp = fingerprint(fp, cmd.waitlist_entry_id)
        replayed = await _check_offer(deps, client_id, cmd, ranges, fp)
        if replayed is not None:
            return replayed
    now = deps.clock()
    s = deps.settings
    booking = Booking.create(
        client_id=client_id,
        place=place,
        ranges=ranges,
        guests=cmd.guests,
        units=cmd.units,
        note=cmd.note,
        request_id=cmd.request_id,
        fingerprint=fp,
        now=now,
        request_ttl=timedelta(seconds=s.request_ttl_s),
        hold_ttl=timedelta(seconds=s.hold_ttl_s),
    )
    if booking.saga_state.in_progress:
        booking.due_time = now + deps.recovery_after

    async def insert() -> Booking | None:
        async with deps.uow() as uow:
            # One statement: the booking, its ranges, history and events, or nothing at all.
            uow.lone_statement()
            uow.collect(booking, keep=True)  # kept on the booking until written: a retry stages them again
            pending, added = await uow.bookings.add_unless_pending_cap(
                booking, s.max_pending_per_client, uow.events_in_statement
            )
            if added:
                await uow.commit()
                booking.events.clear()
                return None
        async with deps.uow() as uow:
            existing = await uow.bookings.get_by_request(client_id, cmd.request_id)
        if existing is None and pending >= s.max_pending_per_client:
            raise TooManyPending(s.max_pending_per_client)
        if existing is None:  # not expected: the insert waits for a concurrent one with the same key
            raise Conflict("the same request is being processed; retry it")
        return existing

    existing = await with_retries(insert)
    if existing is not None:
        return await _replay(deps, existing, fp)
    saga = BookingSaga(deps)
    if cmd.waitlist_entry_id:
        booking = await saga.take_offer(booking, cmd.waitlist_entry_id)
        if booking.status is Status.REJECTED:
            raise WaitlistOfferNotActive(cmd.waitlist_entry_id)
    if booking.mode is BookingMode.REQUEST:
        return booking
    try:
        if cmd.waitlist_entry_id:
            return await saga.book_held(booking, cmd.payment_token)
        return await saga.book_instantly(booking, cmd.payment_token)
    except BookingPaymentDeclined:
        await offer_freed(deps, booking.place_id, booking.ranges)  # the declined booking's hold went back
        raise


async def _check_offer(deps: Deps, client_id: str, cmd: CreateBooking, ranges, fp: str) -> Booking | None:
    """A booking that takes a waitlist offer books exactly the offered range, for the offered client,
    while the offer lasts. A retry of such a booking (the offer taken by it already) is replayed."""
    entry_id = require_uuid(cmd.waitlist_entry_id, "waitlist_entry_id")
    async with deps.uow() as uow:
        entry = await uow.waitlist.get(entry_id)
    if entry is None:
        raise WaitlistEntryNotFound(entry_id)
    entry.check_offer_fits(client_id, cmd.place_id, ranges, cmd.units)
    if entry.offer_active(deps.clock()):
        return None
    async with deps.uow() as uow:
        existing = await uow.bookings.get_by_request(client_id, cmd.request_id)
    if existing is not None:
        return await _replay(deps, existing, fp)
    raise WaitlistOfferNotActive(entry_id)


# ----- reading --------------------------------------------------------------------------------
async def _load(deps: Deps, booking_id: str, history: bool = False) -> Booking:
    require_uuid(booking_id, "id", "INVALID_BOOKING_ID")
    async with deps.uow() as uow:
        booking = await uow.bookings.get(booking_id)
        if booking is None:
            raise BookingNotFound(booking_id)
        if history:
            await uow.bookings.load_history(booking)
        return booking


def _visible(booking: Booking, caller: Caller) -> None:
    """Not yours to see is NOT_FOUND (its existence is not disclosed)."""
    if not (caller.is_privileged or booking.is_party(caller.user_id)):
        raise BookingNotFound(booking.id)


async def get_booking(deps: Deps, caller: Caller, booking_id: str) -> tuple[Booking, str | None]:
    """One booking with its history and the payment status from payments (one batched call)."""
    require_user(caller)
    booking = await _load(deps, booking_id, history=True)
    _visible(booking, caller)
    payment_status = None
    if booking.payment_id:
        try:
            payments = (await deps.payments.payments_by_booking([booking.id])).get(booking.id, [])
            latest = next((p for p in payments if p.id == booking.payment_id), None)
            payment_status = latest.status if latest else None
        except Exception:  # payments down: show the status last seen, never fail the read
            payment_status = None
    return booking, payment_status


@dataclass
class ListBookings:
    client_id: str = ""
    host_id: str = ""
    place_id: str = ""
    statuses: tuple[Status, ...] = ()
    time_range: TimeRange | None = None
    order_by: str = ""
    page_size: int = 0
    page_token: str = ""
    full: bool = False


_ORDER = {"start_time": "first_start", "create_time": "created_at", "update_time": "updated_at"}


async def list_bookings(deps: Deps, caller: Caller, cmd: ListBookings) -> tuple[list[Booking], str, dict]:
    """Bookings visible to the caller: one page query plus one GetPlaces call, whatever the page size."""
    user = require_user(caller)
    for value, field in ((cmd.client_id, "client_id"), (cmd.host_id, "host_id"), (cmd.place_id, "place_id")):
        if value:
            require_uuid(value, field)
    order = (cmd.order_by or "start_time").split()
    if not order or order[0] not in _ORDER or len(order) > 2 or (len(order) == 2 and order[1].lower() != "desc"):
        raise invalid("INVALID_ORDER_BY", 'order_by is "start_time", "create_time" or "update_time" [desc]')
    q = ListQuery(
        client_id=cmd.client_id,
        host_id=cmd.host_id,
        place_id=cmd.place_id,
        statuses=cmd.statuses,
        overlapping=cmd.time_range,
        order_field=_ORDER[order[0]],
        descending=len(order) == 2,
        page_size=_page_size(cmd.page_size),
    )
    if not caller.is_privileged:
        if cmd.host_id and cmd.host_id != user:
            raise NotPlaceOwner()
        if cmd.client_id and cmd.client_id != user:
            raise NotBookingParty()
        if not cmd.host_id:
            q.client_id = user
    filters = fingerprint(q.client_id, q.host_id, q.place_id, q.statuses, q.overlapping, q.order_field, q.descending)
    if cmd.page_token:
        token_filters, value, after_id = decode_page_token(
            cmd.page_token, f=page_tokens.text, v=page_tokens.aware_time, id=page_tokens.uuid_text
        )
        if token_filters != filters:
            raise invalid("INVALID_PAGE_TOKEN", "the page token belongs to other filters")
        q.after = (value, after_id)
    async with deps.uow() as uow:
        rows = await uow.bookings.list(q)
    page, more = rows[: q.page_size], len(rows) > q.page_size
    next_token = ""
    if more:
        last = page[-1]
        v = {"first_start": last.start, "created_at": last.created_at, "updated_at": last.updated_at}[q.order_field]
        next_token = encode_page_token({"f": filters, "v": v.isoformat(), "id": last.id})
    places = await _place_summaries(deps, [b.place_id for b in page])
    return page, next_token, places


async def _place_summaries(deps: Deps, place_ids: list[str]) -> dict:
    """Place summaries for a page: the cache first, then one GetPlaces call for the misses."""
    if not place_ids:
        return {}
    cache = deps.place_cache
    found = await cache.get_many(place_ids) if cache is not None else {}
    missing = [p for p in dict.fromkeys(place_ids) if p not in found]
    if missing:
        try:
            fetched = await deps.availability.get_places(missing)
        except Exception:  # summaries are decoration: a list must not fail because of them
            fetched = {}
        found.update(fetched)
        if cache is not None:
            await cache.put_many(fetched)
    return found


# ----- host decisions -------------------------------------------------------------------------
async def _claim(deps: Deps, caller: Caller, op: str, request_id: str, booking_id: str, *params) -> Booking:
    """Load a booking and record the request id of a mutating call in the same transaction."""
    require_request_id(request_id)
    require_uuid(booking_id, "id", "INVALID_BOOKING_ID")
    async with deps.uow() as uow:
        booking = await uow.bookings.get(booking_id)
        if booking is None:
            raise BookingNotFound(booking_id)
        _visible(booking, caller)
        key = f"{op}:{caller.user_id}:{request_id}"
        await uow.idempotency.claim(key, fingerprint(op, booking_id, *params), booking_id)
        await uow.commit()
        return booking


def _check_etag(booking: Booking, etag: str) -> None:
    if etag and etag != booking.etag:
        raise StaleEtag()


# The flows that start from a booking's status (Booking.begin_flow).
APPROVING = {"action": "approve", "source": Status.REQUESTED}
PAYING = {"action": "confirm", "source": Status.APPROVED}


async def approve_booking(deps: Deps, caller: Caller, request_id: str, booking_id: str, etag: str) -> Booking:
    """The host approves a request: hold the slots, reject the overlapping requests (one statement)."""
    user = require_user(caller)
    booking = await _claim(deps, caller, "approve", request_id, booking_id)
    if booking.host_id != user:
        raise NotPlaceOwner()
    if booking.status is Status.APPROVED:
        return booking  # a retry after success
    _check_etag(booking, etag)
    booking.require(Status.REQUESTED, action="approve")
    saga = BookingSaga(deps)

    def begin(b: Booking, now: datetime) -> None:
        b.begin_flow(SagaState.HOLDING, now, deps.recovery_after, **APPROVING)

    async def flow() -> Booking:
        return await saga.approve(await saga.persist(booking.id, begin), user)

    return await admitted(deps, flow)


async def reject_booking(deps: Deps, caller: Caller, request_id: str, booking_id: str, reason: str, etag: str):
    """The host declines a request."""
    user = require_user(caller)
    if len(reason) > 500:
        raise invalid("INVALID_REASON", "reason is at most 500 characters")
    booking = await _claim(deps, caller, "reject", request_id, booking_id, reason)
    if booking.host_id != user and not caller.is_privileged:
        raise NotPlaceOwner()
    if booking.status is Status.REJECTED:
        return booking
    _check_etag(booking, etag)

    def reject(b: Booking, now: datetime) -> None:
        if b.saga_state.in_progress:  # checked on the row the save writes over: approved meanwhile too
            raise IllegalStatusTransition(f"{b.status.value.upper()} (being approved)", "REJECTED", "reject")
        b.reject(user, reason, now)

    return await BookingSaga(deps).persist(booking.id, reject)


async def cancel_booking(deps: Deps, caller: Caller, request_id: str, booking_id: str, reason: str, etag: str):
    """Client, host or operator cancels; the refund follows the policy (100 % when the host cancels)."""
    user = require_user(caller)
    if len(reason) > 500:
        raise invalid("INVALID_REASON", "reason is at most 500 characters")
    booking = await _claim(deps, caller, "cancel", request_id, booking_id, reason)
    if booking.status is Status.CANCELLED:
        return booking
    _check_etag(booking, etag)
    by_host = user == booking.host_id or caller.is_privileged
    saga = BookingSaga(deps)

    def cancel(b: Booking, now: datetime) -> None:
        if b.saga_state.in_progress:  # checked on the row the save writes over: started meanwhile too
            raise IllegalStatusTransition(f"{b.status.value.upper()} (a payment is in progress)", "CANCELLED", "cancel")
        b.cancel(user, by_host and user != b.client_id, reason, now)
        if b.hold_id or b.payment_id:
            b.set_saga(SagaState.REFUNDING, now, deps.recovery_after)

    booking = await saga.persist(booking.id, cancel)
    if booking.saga_state is SagaState.REFUNDING:
        try:
            booking = await saga.settle(booking)
        except Exception:  # the cancellation stands; the recovery worker finishes the refund
            pass
    await offer_freed(deps, booking.place_id, booking.ranges)
    return booking


async def confirm_booking(deps: Deps, caller: Caller, request_id: str, booking_id: str, token: str) -> Booking:
    """The client pays an approved request."""
    user = require_user(caller)
    if not token or len(token) > 255:
        raise invalid("INVALID_PAYMENT_METHOD_TOKEN", "payment_method_token is required (at most 255 characters)")
    booking = await _claim(deps, caller, "confirm", request_id, booking_id, len(token))
    if booking.client_id != user:
        raise NotBookingClient()
    if booking.status is Status.CONFIRMED:
        return booking
    booking.require(Status.APPROVED, action="confirm")
    if booking.saga_state.in_progress:
        raise FlowInProgress("confirm")
    saga = BookingSaga(deps)

    def begin(b: Booking, now: datetime) -> None:
        b.begin_flow(SagaState.AUTHORIZING, now, deps.recovery_after, **PAYING)

    async def flow() -> Booking:
        try:
            return await saga.pay_approved(await saga.persist(booking.id, begin), token, request_id)
        except BookingPaymentDeclined:
            await offer_freed(deps, booking.place_id, booking.ranges)  # the approval's hold went back
            raise

    return await admitted(deps, flow)


async def mark_no_show(deps: Deps, caller: Caller, request_id: str, booking_id: str, reason: str) -> Booking:
    """The host marks a started, confirmed booking as no-show; the deposit is kept."""
    user = require_user(caller)
    booking = await _claim(deps, caller, "no_show", request_id, booking_id, reason)
    if booking.host_id != user:
        raise NotPlaceOwner()
    if booking.status is Status.NO_SHOW:
        return booking
    saga = BookingSaga(deps)

    def no_show(b: Booking, now: datetime) -> None:
        b.mark_no_show(user, reason, now)
        if b.payment_status == "authorized":
            b.set_saga(SagaState.CAPTURING, now, deps.recovery_after)

    booking = await saga.persist(booking.id, no_show)
    if booking.saga_state is SagaState.CAPTURING:
        booking = await saga.settle(booking)
    return booking


async def complete_booking(deps: Deps, caller: Caller, request_id: str, booking_id: str) -> Booking:
    """An operator (or the sweeper) completes a confirmed booking whose end has passed."""
    require_user(caller)
    if not caller.is_privileged:
        raise NotOperator()
    booking = await _claim(deps, caller, "complete", request_id, booking_id)
    if booking.status is Status.COMPLETED:
        return booking
    return await complete(deps, booking, caller.user_id)


async def complete(deps: Deps, booking: Booking, actor: str) -> Booking:
    saga = BookingSaga(deps)

    def finish(b: Booking, now: datetime) -> None:
        b.complete(actor, now)
        if b.payment_status == "authorized":
            b.set_saga(SagaState.CAPTURING, now, deps.recovery_after)

    booking = await saga.persist(booking.id, finish)
    if booking.saga_state is SagaState.CAPTURING:
        booking = await saga.settle(booking)
    return booking


async def reschedule_booking(
    deps: Deps, caller: Caller, request_id: str, booking_id: str, ranges: list[TimeRange], etag: str
) -> Booking:
    """Hold the new ranges first, then move the booking and release the old hold; a lower price is refunded."""
    user = require_user(caller)
    new_ranges = normalize_ranges(ranges)
    booking = await _claim(deps, caller, "reschedule", request_id, booking_id, new_ranges)
    if not booking.is_party(user):
        raise NotBookingParty()
    if booking.ranges == new_ranges:
        return booking
    _check_etag(booking, etag)
    booking.require(Status.CONFIRMED, action="reschedule")
    if booking.start <= deps.clock():
        raise IllegalStatusTransition("CONFIRMED (already started)", "CONFIRMED", "reschedule")
    if booking.saga_state.in_progress:
        raise IllegalStatusTransition("CONFIRMED (a change is in progress)", "CONFIRMED", "reschedule")
    place = await deps.availability.get_place(booking.place_id)
    new_price = model.quote_price(place, new_ranges, booking.units)
    if new_price.currency != booking.price.currency:
        raise FailedPrecondition(
            f"the place is now priced in {new_price.currency}, the booking was paid in {booking.price.currency}; "
            "cancel it and book anew",
            reason="CURRENCY_CHANGED",
        )
    # Whatever the deposit policy: the card was authorized for the booking's price, and a deposit's
    # remainder captured at the end could not exceed it.
    if new_price.amount_minor > booking.price.amount_minor:
        raise FailedPrecondition(
            "the new ranges cost more than the booking; book them separately", reason="PRICE_INCREASE_NOT_SUPPORTED"
        )
    step = f"reschedule:{request_id}"
    hold = await deps.availability.hold_slots(
        request_id=model.derived_request_id(booking.id, f"{step}:hold"),
        place_id=booking.place_id,
        ranges=new_ranges,
        units=booking.units,
        ttl=timedelta(seconds=deps.settings.hold_ttl_s),
        booking_id=booking.id,
        holder_id=booking.client_id,
    )
    await deps.availability.confirm_hold(model.derived_request_id(booking.id, f"{step}:confirm"), hold.id)

    async def move() -> Booking:
        async with deps.uow() as uow:
            b = await uow.bookings.get(booking.id)
            expected = b.version
            b.reschedule(new_ranges, new_price, hold.id, user, deps.clock(), step, deps.recovery_after)
            await uow.bookings.save(b, expected, ranges_changed=True)
            uow.collect(b)
            await uow.commit()
            return b

    try:
        moved = await with_retries(move)
    except Exception:
        await deps.availability.release_hold(
            model.derived_request_id(booking.id, f"{step}:undo"), hold.id, "reschedule_failed"
        )
        raise
    # The booking has moved: that is the answer. What the move owes (the old hold's release, the
    # refund of a lower price) is recorded with it; if it cannot be done now, the recovery worker
    # does it (saga 'refunding') and the caller still learns that the booking moved.
    try:
        settled = await BookingSaga(deps).settle(moved)
    except Exception:
        # The old ranges are offered only here: the recovery worker that releases them later knows
        # the old hold's id, not its ranges, and the offer is a courtesy (anyone may book them).
        log.warning("a reschedule's release or refund is left to the recovery worker", extra={"booking_id": moved.id})
        return moved
    await offer_freed(deps, booking.place_id, booking.ranges)  # the old ranges, released by settle
    return settled


# ----- recurring series -----------------------------------------------------------------------
@dataclass
class CreateRecurring:
    request_id: str
    place_id: str
    first: TimeRange
    frequency: str  # daily | weekly
    count: int
    until: datetime | None
    guests: int
    units: int
    payment_token: str
    note: str
    allow_partial: bool


def occurrences(first: TimeRange, frequency: str, count: int, until: datetime | None, tz: str) -> list[TimeRange]:
    """Same local wall time every day/week in the place's zone (across daylight-saving changes)."""
    if frequency not in ("daily", "weekly"):
        raise invalid("INVALID_RECURRENCE", "recurrence frequency must be DAILY or WEEKLY")
    if (count == 0) == (until is None):
        raise invalid("INVALID_RECURRENCE", "set exactly one of recurrence.count and recurrence.until")
    if count and not 2 <= count <= 52:
        raise invalid("INVALID_RECURRENCE", "recurrence.count must be 2-52")
    zone = iana_zone(tz) or UTC  # the place's zone, which availability has checked
    step = timedelta(days=1 if frequency == "daily" else 7)
    length = first.duration
    out: list[TimeRange] = []
    for i in range(count or 52):
        try:
            naive = first.start.astimezone(zone).replace(tzinfo=None) + step * i
            start = naive.replace(tzinfo=zone).astimezone(first.start.tzinfo)
            occurrence = TimeRange(start, start + length)
        except OverflowError:  # past the year 9999: after any `until`, but no `count` gets there
            if until is None:
                raise invalid(
                    "INVALID_RECURRENCE", "the recurrence runs past the end of the supported calendar (year 9999)"
                ) from None
            break
        if until is not None and start > until:
            break
        out.append(occurrence)
    if len(out) < 2:
        raise invalid("INVALID_RECURRENCE", "the recurrence yields fewer than 2 occurrences")
    return out


async def create_recurring_bookings(deps: Deps, caller: Caller, cmd: CreateRecurring):
    """Book every occurrence (all or nothing, unless allow_partial): see BookingSaga.book_series."""
    return await admitted(deps, lambda: _create_recurring_bookings(deps, caller, cmd))


async def _create_recurring_bookings(deps: Deps, caller: Caller, cmd: CreateRecurring):
    client_id = require_user(caller)
    place = await deps.availability.get_place(require_uuid(cmd.place_id, "place_id"))
    if place.booking_mode is not BookingMode.INSTANT:
        raise FailedPrecondition("recurring bookings need an instant-book place", reason="RECURRING_NOT_SUPPORTED")
    ranges = occurrences(cmd.first, cmd.frequency, cmd.count, cmd.until, place.time_zone)
    series_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"series:{client_id}:{cmd.request_id}"))
    # Every occurrence's fingerprint carries the whole series', so a retry that changes any of it
    # (the recurrence, allow_partial) is a reused request id, not the same series.
    series_fp = fingerprint(cmd.first, cmd.frequency, cmd.count, cmd.until, cmd.allow_partial)
    singles = [
        CreateBooking(
            f"{cmd.request_id[:56]}:{i}", cmd.place_id, [r], cmd.guests, cmd.units, cmd.payment_token, cmd.note
        )
        for i, r in enumerate(ranges)
    ]
    first, inserted = await _insert_for_series(deps, client_id, place, singles[0], series_id, series_fp)
    if inserted:  # else a retry: its answer is what the first call made of the series
        held = [first]
        for single in singles[1:]:
            held.append((await _insert_for_series(deps, client_id, place, single, series_id, series_fp))[0])
        await BookingSaga(deps).book_series(held, cmd.payment_token, cmd.allow_partial)
    async with deps.uow() as uow:
        found = await uow.bookings.get_by_requests(client_id, [s.request_id for s in singles])
    for booking, single in zip(found, singles, strict=True):
        if booking is not None and booking.fingerprint != _occurrence_fingerprint(single, place, series_fp):
            raise IdempotencyKeyReused("this request_id was already used with other parameters")
    booked, conflicts = await _series_outcome(deps, found, cmd.allow_partial, place.id)
    return booked, conflicts, series_id


def _occurrence_fingerprint(cmd: CreateBooking, place: Place, series_fp: str) -> str:
    ranges = _check_create(cmd, place)
    return fingerprint(cmd.place_id, ranges, cmd.guests, cmd.units, cmd.note, True, series_fp)


def _booked(b: Booking) -> bool:
    """An occurrence the series booked (whatever became of it since)."""
    booked = (Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED)
    return b.status in booked and b.failure_reason != SERIES_NOT_BOOKED


async def _series_outcome(deps: Deps, found: list[Booking | None], allow_partial: bool, place_id: str):
    """The answer to a series, read from its occurrences, so that a retry gets the first answer:
    (booked, the ranges of those that could not be), or the reason nothing was booked."""
    if any(b is None or b.status is Status.HELD for b in found):
        if any(b is not None and b.status is Status.HELD for b in found):
            raise Unavailable(
                "this series is still being processed; retry with the same request id to learn its outcome",
                reason="BOOKING_IN_PROGRESS",
            )
        raise Unavailable(
            "this series was not made (it could not be completed); retry with a new request id",
            reason="BOOKING_NOT_MADE",
        )
    booked = [b for b in found if _booked(b)]
    failed = [b for b in found if not _booked(b) and b.failure_reason != SERIES_NOT_BOOKED]
    outage = [b for b in failed if b.status is Status.EXPIRED and b.failure_reason.endswith("_unavailable")]
    if allow_partial and not outage:
        return booked, [b.ranges[0] for b in failed]
    if len(booked) == len(found):
        return booked, []
    taken = [b.ranges[0] for b in failed if b.failure_reason == "slot_unavailable"]
    if taken and not outage:
        raise SlotUnavailable(f"{len(taken)} occurrence(s) are taken", taken, place_id)
    for why in (outage or failed)[:1]:
        await _replay(deps, why, why.fingerprint)  # raises the refusal (or the outage) that ended it
    raise Unavailable("this series was not made; retry with a new request id", reason="BOOKING_NOT_MADE")


async def _insert_for_series(
    deps: Deps, client_id: str, place: Place, cmd: CreateBooking, series_id: str, series_fp: str
) -> tuple[Booking, bool]:
    """The occurrence's booking (HELD, saga 'holding') and True; or the one a first call made, and False."""
    ranges = _check_create(cmd, place)
    fp = _occurrence_fingerprint(cmd, place, series_fp)
    now = deps.clock()
    booking = Booking.create(
        client_id=client_id,
        place=place,
        ranges=ranges,
        guests=cmd.guests,
        units=cmd.units,
        note=cmd.note,
        request_id=cmd.request_id,
        fingerprint=fp,
        now=now,
        request_ttl=timedelta(seconds=deps.settings.request_ttl_s),
        hold_ttl=timedelta(seconds=deps.settings.hold_ttl_s),
        series_id=series_id,
    )
    booking.due_time = now + deps.recovery_after
    async with deps.uow() as uow:
        if not await uow.bookings.add(booking):
            existing = await uow.bookings.get_by_request(client_id, cmd.request_id)
            if existing.fingerprint != fp:
                raise IdempotencyKeyReused("this request_id was already used with other parameters")
            return existing, False
        await uow.commit()
    return booking, True


# ----- waitlist -------------------------------------------------------------------------------
async def join_waitlist(
    deps: Deps, caller: Caller, request_id: str, place_id: str, r: TimeRange, guests: int, units: int
):
    """Wait for a taken range; the first waiter is offered a short hold when it frees up."""
    client_id = require_user(caller)
    require_request_id(request_id)
    place = await deps.availability.get_place(require_uuid(place_id, "place_id"))
    if not 1 <= guests <= place.capacity:
        raise invalid("INVALID_GUESTS", f"guests must be 1-{place.capacity}")
    units = units or 1
    if not 1 <= units <= place.unit_count:
        raise invalid("INVALID_UNITS", f"units must be 1-{place.unit_count} for this place")
    if r.start <= deps.clock():
        raise invalid("INVALID_TIME_RANGE", "the range must be in the future")
    entry_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"waitlist:{client_id}:{request_id}"))
    now = deps.clock()
    # Waiting is for a taken range: one that nothing occupies is booked, not waited for. (With
    # several units, any occupant counts as taken: the hold attempt decides the rest.)
    if await deps.availability.occupied_units(place.id, r, now) == 0:
        async with deps.uow() as uow:
            joined = await uow.waitlist.get(entry_id, position=True)  # a retry after the range freed up
        if joined is None:
            raise SlotAvailable(place.id)
        return joined
    entry = WaitlistEntry(entry_id, place.id, client_id, r, guests, units, WaitState.WAITING, now, now)
    async with deps.uow() as uow:
        existing = await uow.idempotency.claim(
            f"join_waitlist:{client_id}:{request_id}", fingerprint(place_id, r, guests, units), entry_id
        )
        if existing:
            return await uow.waitlist.get(existing, position=True)
        await uow.waitlist.add(entry)
        joined = await uow.waitlist.get(entry_id, position=True)
        await uow.commit()
    return joined


async def leave_waitlist(deps: Deps, caller: Caller, request_id: str, entry_id: str) -> WaitlistEntry:
    user = require_user(caller)
    require_request_id(request_id)
    require_uuid(entry_id, "id")
    async with deps.uow() as uow:
        # Locked: a booking taking the offer (or the offer sweep) decides under the same row lock,
        # so leaving never releases a hold a booking has just taken, nor blanks a new offer's hold.
        entry = await uow.waitlist.lock(entry_id)
        if entry is None or (entry.client_id != user and not caller.is_privileged):
            raise WaitlistEntryNotFound(entry_id)
        offered = entry.state is WaitState.OFFERED  # a FULFILLED entry's hold is its booking's now
        entry.leave(deps.clock())
        await uow.waitlist.save(entry)
        await uow.commit()
    if offered and entry.hold_id:
        await deps.availability.release_hold(
            model.derived_request_id(entry.id, "leave"), entry.hold_id, "waitlist_left"
        )
    return entry


async def list_waitlist(deps: Deps, caller: Caller, place_id: str, client_id: str, states, page_size: int, token: str):
    user = require_user(caller)
    if bool(place_id) == bool(client_id):
        raise invalid("INVALID_ARGUMENT", "set exactly one of place_id and client_id")
    if place_id:
        place = await deps.availability.get_place(require_uuid(place_id, "place_id"))
        if place.owner_id != user and not caller.is_privileged:
            raise NotPlaceOwner()
    elif client_id != user and not caller.is_privileged:
        raise NotBookingParty()
    size = _page_size(page_size)
    (offset,) = decode_page_token(token, o=page_tokens.non_negative_int) if token else (0,)
    async with deps.uow() as uow:
        rows = await uow.waitlist.list(
            place_id, client_id, states or (WaitState.WAITING, WaitState.OFFERED), size, offset
        )
    page = rows[:size]
    return page, encode_page_token({"o": offset + size}) if len(rows) > size else ""


# Waiters tried per freed range before giving up: each try is one HoldSlots call.
MAX_OFFER_TRIES = 10


async def offer_freed(deps: Deps, place_id: str, ranges: tuple[TimeRange, ...]) -> None:
    """Ranges of a place freed up: offer a short hold to the longest-waiting client whose wanted
    range and units fit, trying the next in line when a waiter's hold is refused."""
    passed: list[str] = []
    try:
        while len(passed) < MAX_OFFER_TRIES:
            entry = await _offer_next(deps, place_id, ranges, tuple(passed))
            if entry is None or entry.state is WaitState.OFFERED:
                return
            passed.append(entry.id)
    except Exception:  # an offer is a courtesy; the freed time is bookable by anyone anyway
        log.warning("a freed range was not offered to the waitlist", extra={"place_id": place_id}, exc_info=True)


async def _offer_next(deps: Deps, place_id: str, ranges, passed: tuple[str, ...]) -> WaitlistEntry | None:
    """The next waiter is claimed in one transaction (OFFERED, no hold yet: concurrent offers skip
    it), held for by a peer call outside it, and recorded in a second one. The entry, back to
    WAITING if its range is still taken (for its units), or None when nobody is waiting."""
    ttl = timedelta(seconds=deps.settings.waitlist_offer_ttl_s)
    async with deps.uow() as uow:
        now = deps.clock()
        entry = await uow.waitlist.first_waiting(place_id, ranges, now, passed)
        if entry is None:
            return None
        entry.offer("", now + ttl, now)
        await uow.waitlist.save(entry)
        await uow.commit()
    try:
        hold = await deps.availability.hold_slots(
            # One request id per offer (its claim time): a later offer of the same entry is a new hold.
            request_id=model.derived_request_id(entry.id, f"offer:{now.isoformat()}"),
            place_id=entry.place_id,
            ranges=(entry.range,),
            units=entry.units,
            ttl=ttl,
            booking_id="",
            holder_id=entry.client_id,
        )
    except FailedPrecondition:  # still taken for this waiter, or the schedule refuses it now
        hold = None
    except Exception:
        await _record_offer(deps, entry, None)
        raise
    return await _record_offer(deps, entry, hold)


async def _record_offer(deps: Deps, entry: WaitlistEntry, hold) -> WaitlistEntry:
    async with deps.uow() as uow:
        current = await uow.waitlist.lock(entry.id)
        ours = current is not None and current.state is WaitState.OFFERED and not current.hold_id
        if ours:  # not left meanwhile
            if hold is None:
                entry.keep_waiting(deps.clock())
            else:
                entry.hold_id = hold.id
                uow.stage(model.WaitlistOffered(entry))
            await uow.waitlist.save(entry)
            await uow.commit()
    if hold is not None and not ours:
        await deps.availability.release_hold(model.derived_request_id(entry.id, "unclaimed"), hold.id, "waitlist_left")
    return entry if ours else current


async def expire_lapsed_offers(deps: Deps, limit: int) -> int:
    """The sweep: an offer whose hold lapsed unused is EXPIRED and its range offered to the next
    waiter; an entry whose wanted range has started is EXPIRED. Returns how many entries it handled."""
    now = deps.clock()
    async with deps.uow() as uow:
        lapsed = await uow.waitlist.lapsed(now, limit)
        for entry in lapsed:
            if entry.state is WaitState.OFFERED and not entry.hold_id:
                entry.keep_waiting(now)  # the offer's hold was never recorded: back in line
            else:
                entry.lapse(now)
            await uow.waitlist.save(entry)
        if lapsed:
            await uow.commit()
    for entry in lapsed:
        if entry.state is WaitState.EXPIRED and entry.hold_id and entry.range.start > now:
            try:
                await deps.availability.release_hold(
                    model.derived_request_id(entry.id, "lapse"), entry.hold_id, "waitlist_offer_lapsed"
                )
            except Exception:  # the hold lapses on its own: availability treats it as expired anyway
                log.warning("a lapsed offer's hold was not released", extra={"entry_id": entry.id})
            await offer_freed(deps, entry.place_id, (entry.range,))
    return len(lapsed)


# ----- reviews --------------------------------------------------------------------------------
async def create_review(deps: Deps, caller: Caller, request_id: str, booking_id: str, rating: int, text: str) -> Review:
    """The client of a completed booking reviews it once; the place's aggregate is updated incrementally."""
    user = require_user(caller)
    require_request_id(request_id)
    booking = await _load(deps, booking_id)
    _visible(booking, caller)
    review = Review.write(booking, user, rating, text, deps.clock())
    async with deps.uow() as uow:
        if not await uow.reviews.add(review):
            existing = await uow.reviews.get_by_booking(booking.id)
            if existing.rating == rating and existing.text == text:
                return existing  # a retry
            raise ReviewAlreadyExists()
        await uow.reviews.apply_rating(review.place_id, rating, +1)
        uow.stage(model.ReviewCreated(review))
        await uow.commit()
    return review


async def reply_to_review(deps: Deps, caller: Caller, request_id: str, review_id: str, text: str) -> Review:
    user = require_user(caller)
    require_request_id(request_id)
    require_uuid(review_id, "review_id")
    async with deps.uow() as uow:
        review = await uow.reviews.get(review_id)
        if review is None:
            raise ReviewNotFound(review_id)
        if review.reply(user, text, deps.clock()):
            await uow.reviews.save(review)
            await uow.commit()
    return review


async def hide_review(deps: Deps, caller: Caller, request_id: str, review_id: str, reason: str) -> Review:
    require_user(caller)
    if not caller.is_agent:
        raise NotOperator()
    require_request_id(request_id)
    require_uuid(review_id, "review_id")
    async with deps.uow() as uow:
        review = await uow.reviews.get(review_id)
        if review is None:
            raise ReviewNotFound(review_id)
        if review.hide(reason, deps.clock()):
            await uow.reviews.save(review)
            await uow.reviews.apply_rating(review.place_id, review.rating, -1)
            uow.stage(model.ReviewHidden(review))
            await uow.commit()
    return review


async def list_reviews(deps: Deps, caller: Caller, place_id: str, include_hidden: bool, page_size: int, token: str):
    if include_hidden and not caller.is_agent:
        raise NotOperator()
    require_uuid(place_id, "place_id")
    size = _page_size(page_size)
    after = None
    if token:
        after = decode_page_token(token, t=page_tokens.aware_time, id=page_tokens.uuid_text)
    async with deps.uow() as uow:
        rows = await uow.reviews.list(place_id, include_hidden, size, after)
    page = rows[:size]
    next_token = (
        encode_page_token({"t": page[-1].created_at.isoformat(), "id": page[-1].id}) if len(rows) > size else ""
    )
    return page, next_token


# ----- stats ----------------------------------------------------------------------------------
async def get_booking_stats(deps: Deps, caller: Caller, window: TimeRange, host_id: str, place_id: str, tz: str):
    """Counts per local day and status, cancellation rate and revenue, by one aggregate query."""
    user = require_user(caller)
    if window.duration > timedelta(days=366):
        raise invalid("INVALID_TIME_RANGE", "time_range is at most 366 days")
    if iana_zone(tz or "UTC") is None:
        raise invalid("INVALID_TIME_ZONE", f"unknown time zone {tz[:64]!r}")
    if not caller.is_privileged:
        if host_id and host_id != user:
            raise NotPlaceOwner()
        host_id = user
    for v, f in ((host_id, "host_id"), (place_id, "place_id")):
        if v:
            require_uuid(v, f)
    async with deps.uow() as uow:
        return await uow.bookings.stats(host_id, place_id, window, tz or "UTC")
