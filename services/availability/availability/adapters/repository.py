"""Repositories over SQLAlchemy Core: rows in, domain dataclasses out. Every statement names the
schema, touches as few tables (and so indexes) as the use case needs, and never loads lazily."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import and_, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from availability.adapters.orm import calendar_entries, holds, places, requests
from availability.domain.model import (
    CancellationPolicy,
    DepositPolicy,
    Hold,
    HoldState,
    Money,
    Place,
    Schedule,
    TimeRange,
)
from kit.db import sqlstate_of
from kit.errors import IdempotencyKeyReused
from kit.sql import OUTBOX_CTE, Driver, EventsInStatement, with_events

# The hot paths (HoldSlots, ConfirmHold, ReleaseHold) run plain SQL on the unit of work's asyncpg
# connection (kit.sql): few statements, each doing several things, no per-statement SQLAlchemy cost.
DriverFactory = Callable[[], Awaitable[Driver]]

_PLACE_JSON = ("photo_urls", "deposit_policy", "cancellation_policy", "schedule")
_PLACE_COLUMNS = ", ".join(f"p.{c.name}" for c in places.c if c.name != "id")
_HOLD_COLUMNS = ", ".join(f"h.{c.name}" for c in holds.c if c.name not in ("id", "place_id"))


def _json(value):
    # SQLAlchemy's asyncpg dialect gives its connections a JSON codec (decoded values); a bare
    # connection would give text.
    return json.loads(value) if isinstance(value, str) else value


def place_from_record(record) -> Place:
    """A place from a plain-SQL row (ids selected as ::text)."""
    values = dict(record)
    for name in _PLACE_JSON:
        values[name] = _json(values[name])
    return place_from_row(SimpleNamespace(**values))


def hold_from_record(record) -> Hold:
    values = dict(record)
    values["ranges"] = _json(values["ranges"])
    return hold_from_row(SimpleNamespace(**values))


def _text_ranges(ranges: Sequence[TimeRange]) -> tuple[list[str], list[str]]:
    return [r.start.isoformat() for r in ranges], [r.end.isoformat() for r in ranges]


# Serialize the place's calendar writers (the advisory lock, taken first: the INSERT reads from it),
# record the hold unless its request id exists, and read the place: one round trip.
_LOCK_ADD_HOLD_READ_PLACE = f"""
WITH locked AS (SELECT pg_advisory_xact_lock(hashtext($1)) AS l),
added AS (
    INSERT INTO availability.holds
           (id, request_id, fingerprint, kind, place_id, booking_id, holder_id, ranges, units, state,
            expires_at, reason)
    SELECT $2::uuid, $3, $4, $5, $6::uuid, $7, $8, $9::jsonb, $10, $11, $12, $13 FROM locked
    ON CONFLICT (request_id) DO NOTHING
    RETURNING create_time, update_time
)
SELECT a.create_time AS hold_create_time, a.update_time AS hold_update_time,
       p.id::text AS id, {_PLACE_COLUMNS}
  FROM locked
  LEFT JOIN added a ON true
  LEFT JOIN availability.places p ON p.id = $6::uuid
"""

# The whole of a one-range, one-unit hold in one statement (HoldSlots' fast path): the place's
# advisory lock, the place still as the service validated it (its version), the calendar row (the
# exclusion constraint decides: ON CONFLICT DO NOTHING), then the hold and its outbox rows only if
# the calendar row went in. Writes nothing otherwise: a taken or expired-occupied range, a changed
# place, or a repeated request id (which fails the holds' unique key, undoing the statement) all
# go to the full transaction.
_HOLD_AT_ONCE = f"""
WITH locked AS (SELECT pg_advisory_xact_lock(hashtext($1)) AS l),
ok AS (
    SELECT 1 AS ok FROM locked, availability.places p WHERE p.id = $6::uuid AND p.version = $14 AND p.active
), inserted AS (
    INSERT INTO availability.calendar_entries
           (hold_id, place_id, unit, during, booked, kind, booking_id, expires_at, live)
    SELECT $2::uuid, $6::uuid, 0, tstzrange($16::timestamptz, $17::timestamptz, '[)'),
           tstzrange($18::timestamptz, $19::timestamptz, '[)'), $5, $7, $12, true
      FROM ok
    ON CONFLICT DO NOTHING
    RETURNING 1
), added AS (
    INSERT INTO availability.holds
           (id, request_id, fingerprint, kind, place_id, booking_id, holder_id, ranges, units, state,
            expires_at, reason, create_time, update_time)
    SELECT $2::uuid, $3, $4, $5, $6::uuid, $7, $8, $9::jsonb, $10, $11, $12, $13, $15, $15
     WHERE EXISTS (SELECT 1 FROM inserted)
    RETURNING 1
){OUTBOX_CTE}
SELECT (SELECT count(*) FROM ok) AS place_unchanged, (SELECT count(*) FROM added) AS added
"""

# ConfirmHold's fast path: HELD and unexpired -> CONFIRMED, its calendar rows made permanent, the
# request id recorded and the events written, only if the hold was so; nothing otherwise (then the
# full transaction answers). A repeated request id fails the key and undoes the statement.
_CONFIRM_AT_ONCE = f"""
WITH confirmed AS (
    UPDATE availability.holds SET state = 'confirmed', expires_at = NULL, update_time = now()
     WHERE id = $1::uuid AND kind = 'hold' AND state = 'held' AND expires_at > $2
    RETURNING update_time
), claim AS (
    INSERT INTO availability.requests (request_id, operation, fingerprint, resource_id)
    SELECT $3, 'ConfirmHold', $4, $5 WHERE EXISTS (SELECT 1 FROM confirmed)
), made_permanent AS (
    UPDATE availability.calendar_entries SET kind = 'confirmed', expires_at = NULL
     WHERE hold_id = $1::uuid AND live AND EXISTS (SELECT 1 FROM confirmed)
){OUTBOX_CTE}
SELECT (SELECT update_time FROM confirmed) AS update_time
"""

# After a fast-path miss: whether the request id was used already, and what occupies the range
# (holds past expiry never count). One read.
_REPLAY_OR_CONFLICTS = """
SELECT NULL::int AS unit, NULL::timestamptz AS s, NULL::timestamptz AS e, true AS replay
  FROM availability.holds WHERE request_id = $5
UNION ALL
SELECT unit, lower(during), upper(during), false
  FROM availability.calendar_entries
 WHERE place_id = $1::uuid AND live AND (expires_at IS NULL OR expires_at > $2)
   AND during && tstzrange($3::timestamptz, $4::timestamptz, '[)')
"""

# Claim the request id and lock the hold row: one round trip. `claimed` is 0 for a repeated id.
_CLAIM_AND_LOCK_HOLD = f"""
WITH claim AS (
    INSERT INTO availability.requests (request_id, operation, fingerprint, resource_id)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT DO NOTHING
    RETURNING request_id
)
SELECT (SELECT count(*) FROM claim) AS claimed, h.id::text AS id, h.place_id::text AS place_id, {_HOLD_COLUMNS}
  FROM availability.holds h
 WHERE h.id = $5::uuid
   FOR UPDATE OF h
"""

_EARLIER_REQUEST = "SELECT operation, fingerprint, resource_id FROM availability.requests WHERE request_id = $1"

_SAVE_STATE = """
UPDATE availability.holds SET state = $2, expires_at = $3, reason = $4, update_time = now()
 WHERE id = $1::uuid
RETURNING update_time
"""

# The new state and the calendar rows' kind in one round trip.
_SAVE_STATE_AND_CONFIRM_ROWS = f"""
WITH confirmed AS (
    UPDATE availability.calendar_entries SET kind = 'confirmed', expires_at = NULL
     WHERE hold_id = $1::uuid AND live
)
{_SAVE_STATE.strip()}
"""

# The new state, and the hold's rows out of the calendar (what was freed), in one round trip.
_SAVE_STATE_AND_FREE_ROWS = """
WITH saved AS (
    UPDATE availability.holds SET state = $2, expires_at = $3, reason = $4, update_time = now()
     WHERE id = $1::uuid
    RETURNING update_time
), freed AS (
    UPDATE availability.calendar_entries SET live = false
     WHERE hold_id = $1::uuid AND live
    RETURNING lower(during) AS s, upper(during) AS e
)
SELECT update_time, NULL::timestamptz AS s, NULL::timestamptz AS e FROM saved
UNION ALL
SELECT NULL, s, e FROM freed
"""

# Insert the rows on one unit where free, after taking the expired holds' rows that overlap them out
# of the calendar (an expired hold still occupies its rows until flipped): one round trip. The
# count() makes the UPDATE finish before the INSERT starts; the exclusion check then ignores the
# rows this transaction took out. Both write calendar_entries: no lock beyond the INSERT's own.
_FREE_EXPIRED_AND_INSERT = """
WITH wanted AS (
    SELECT tstzrange(r.d0::timestamptz, r.d1::timestamptz, '[)') AS during,
           tstzrange(r.b0::timestamptz, r.b1::timestamptz, '[)') AS booked
      FROM unnest($7::text[], $8::text[], $9::text[], $10::text[]) AS r(d0, d1, b0, b1)
), freed AS (
    UPDATE availability.calendar_entries SET live = false
     WHERE place_id = $2::uuid AND live AND kind = 'hold' AND expires_at <= $11
       AND during && ANY (SELECT during FROM wanted)
    RETURNING hold_id
), inserted AS (
    INSERT INTO availability.calendar_entries
           (hold_id, place_id, unit, during, booked, kind, booking_id, expires_at, live)
    SELECT $1::uuid, $2::uuid, $3, w.during, w.booked, $4, $5, $6, true
      FROM wanted w
     WHERE (SELECT count(*) FROM freed) >= 0
    ON CONFLICT DO NOTHING
    RETURNING lower(booked) AS s
)
SELECT s, NULL AS freed FROM inserted
UNION ALL
SELECT DISTINCT NULL::timestamptz, hold_id::text FROM freed
"""

_OVERLAPS_ANY = (
    "during && ANY (SELECT tstzrange(g.s::timestamptz, g.e::timestamptz, '[)') "
    "FROM unnest($3::text[], $4::text[]) AS g(s, e))"
)

_LIVE_ENTRIES = f"""
SELECT unit, lower(during) AS s, upper(during) AS e
  FROM availability.calendar_entries
 WHERE place_id = $1::uuid AND live AND (expires_at IS NULL OR expires_at > $2) AND {_OVERLAPS_ANY}
"""


def place_from_row(row) -> Place:
    return Place(
        id=row.id,
        owner_id=row.owner_id,
        title=row.title,
        description=row.description,
        city=row.city,
        address=row.address,
        capacity=row.capacity,
        unit_count=row.unit_count,
        price_per_hour=Money(row.price_amount, row.price_currency),
        time_zone=row.time_zone,
        booking_mode=row.booking_mode,
        photo_urls=list(row.photo_urls),
        active=row.active,
        rating_sum=row.rating_sum,
        rating_count=row.rating_count,
        deposit_policy=DepositPolicy.from_dict(row.deposit_policy),
        cancellation_policy=CancellationPolicy.from_dict(row.cancellation_policy),
        schedule=Schedule.from_dict(row.schedule),
        version=row.version,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def place_values(place: Place) -> dict:
    return {
        "owner_id": place.owner_id,
        "title": place.title,
        "description": place.description,
        "city": place.city,
        "address": place.address,
        "capacity": place.capacity,
        "unit_count": place.unit_count,
        "price_amount": place.price_per_hour.amount_minor,
        "price_currency": place.price_per_hour.currency_code,
        "time_zone": place.time_zone,
        "booking_mode": place.booking_mode,
        "photo_urls": list(place.photo_urls),
        "active": place.active,
        "rating_sum": place.rating_sum,
        "rating_count": place.rating_count,
        "rating_average": place.rating_average,
        "deposit_policy": place.deposit_policy.to_dict(),
        "cancellation_policy": place.cancellation_policy.to_dict(),
        "schedule": place.schedule.to_dict(),
        "version": place.version,
    }


class SqlAlchemyPlaceRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def get(self, place_id: str, for_update: bool = False) -> Place | None:
        query = select(places).where(places.c.id == place_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return place_from_row(row) if row else None

    async def get_many(self, ids: Sequence[str]) -> list[Place]:
        rows = (await self.session.execute(select(places).where(places.c.id.in_(list(ids))))).all()
        return [place_from_row(r) for r in rows]

    async def add(self, place: Place) -> None:
        row = (
            await self.session.execute(
                insert(places)
                .values(id=place.id, **place_values(place))
                .returning(places.c.create_time, places.c.update_time)
            )
        ).one()
        place.create_time, place.update_time = row.create_time, row.update_time

    async def save(self, place: Place) -> None:
        row = (
            await self.session.execute(
                update(places)
                .where(places.c.id == place.id)
                .values(**place_values(place), update_time=func.now())
                .returning(places.c.update_time)
            )
        ).one()
        place.update_time = row.update_time

    async def list_filtered(
        self, f, active: bool | None, currency, low, high, fields: list[tuple[str, bool]], position, limit: int
    ) -> list[Place]:
        """Places matching the filter `f`, ordered by `fields` (name, descending) then id, after
        the keyset `position` (the sort values and id of the previous page's last place)."""
        c = places.c
        where = [c.capacity >= f.min_capacity, c.rating_average >= f.min_rating]
        if f.city:
            where.append(func.lower(c.city) == f.city.lower())
        if f.owner_id:
            where.append(c.owner_id == f.owner_id)
        if active is not None:
            where.append(c.active.is_(active))
        if currency:
            where.append(c.price_currency == currency)
        if low is not None:
            where.append(c.price_amount >= low)
        if high is not None:
            where.append(c.price_amount <= high)
        if position:
            where.append(_keyset(fields, position))
        order = [SORTABLE[n].desc() if desc else SORTABLE[n].asc() for n, desc in fields] + [c.id.asc()]
        query = select(places).where(*where).order_by(*order).limit(limit)
        return [place_from_row(r) for r in (await self.session.execute(query)).all()]


SORTABLE = {
    "price_per_hour": places.c.price_amount,
    "rating_average": places.c.rating_average,
    "capacity": places.c.capacity,
    "create_time": places.c.create_time,
    "title": places.c.title,
}


def _keyset(fields: list[tuple[str, bool]], position: tuple):
    """(a, b, id) after (va, vb, vid) with per-field directions, as an OR chain. The position's
    values are of their columns' types (the service layer checked and converted them)."""
    columns = [(SORTABLE[n], desc) for n, desc in fields] + [(places.c.id, False)]
    values = list(position)
    clauses = []
    for i, (column, desc) in enumerate(columns):
        equal = [c == v for (c, _), v in zip(columns[:i], values[:i], strict=True)]
        clauses.append(and_(*equal, column < values[i] if desc else column > values[i]))
    return or_(*clauses)


class SqlAlchemyRequestRepository:
    """Idempotency keys of mutations that have no row of their own to carry one."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def claim(self, request_id: str, operation: str, fingerprint: str, resource_id: str) -> str | None:
        """Record the key; return the resource id of an earlier identical request, None if new.
        The same key with other parameters raises IdempotencyKeyReused."""
        inserted = (
            await self.session.execute(
                pg_insert(requests)
                .values(request_id=request_id, operation=operation, fingerprint=fingerprint, resource_id=resource_id)
                .on_conflict_do_nothing()
                .returning(requests.c.request_id)
            )
        ).first()
        if inserted:
            return None
        row = (await self.session.execute(select(requests).where(requests.c.request_id == request_id))).one()
        if row.operation != operation or row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(f"request_id {request_id!r} was already used with other parameters")
        return row.resource_id


def _ranges_json(ranges: list[TimeRange]) -> list[list[str]]:
    return [[r.start.isoformat(), r.end.isoformat()] for r in ranges]


def _lock_and_hold_args(hold: Hold) -> list:
    """$1-$13 of the statements that lock a hold's place and insert its row: the place (for the
    advisory lock), then the row's columns."""
    return [
        hold.place_id,
        hold.id,
        hold.request_id,
        hold.fingerprint,
        hold.kind,
        hold.place_id,
        hold.booking_id,
        hold.holder_id,
        json.dumps(_ranges_json(hold.ranges)),
        hold.units,
        hold.state.value,
        hold.expires_at,
        hold.reason,
    ]


def hold_from_row(row) -> Hold:
    return Hold(
        id=row.id,
        request_id=row.request_id,
        fingerprint=row.fingerprint,
        kind=row.kind,
        place_id=row.place_id,
        booking_id=row.booking_id,
        holder_id=row.holder_id,
        ranges=[TimeRange(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in row.ranges],
        units=row.units,
        state=HoldState(row.state),
        expires_at=row.expires_at,
        reason=row.reason,
        create_time=row.create_time,
        update_time=row.update_time,
    )


class SqlAlchemyHoldRepository:
    """Holds and blocks (both own calendar rows)."""

    def __init__(self, session: AsyncSession, driver: DriverFactory | None = None):
        self.session, self.driver = session, driver

    async def lock_place_and_add(self, hold: Hold) -> tuple[bool, Place | None]:
        """Lock the place's calendar (advisory lock), insert the hold unless its request id exists,
        read the place: (inserted, place or None), one round trip."""
        db = await self.driver()
        row = await db.fetchrow(_LOCK_ADD_HOLD_READ_PLACE, *_lock_and_hold_args(hold))
        inserted = row["hold_create_time"] is not None
        if inserted:
            hold.create_time, hold.update_time = row["hold_create_time"], row["hold_update_time"]
        if row["id"] is None:
            return inserted, None
        values = dict(row)
        del values["hold_create_time"], values["hold_update_time"]
        return inserted, place_from_record(values)

    async def hold_at_once(
        self, hold: Hold, place_version: int, during: TimeRange, now: datetime, events: EventsInStatement
    ) -> str:
        """HoldSlots' fast path (_HOLD_AT_ONCE) for a one-range, one-unit hold whose calendar row
        is `during` (buffers included), with the unit of work's events written only if the row
        went in. Answers "held"; "taken" (the range is occupied); "changed" (the place is not as
        validated) or "repeated" (the request id exists): in the last three nothing was written."""
        booked = hold.ranges[0]
        args = [
            *_lock_and_hold_args(hold),
            place_version,
            now,
            during.start,
            during.end,
            booked.start,
            booked.end,
        ]
        sql, args = with_events(_HOLD_AT_ONCE, args, events, "EXISTS (SELECT 1 FROM inserted)")
        try:
            row = await (await self.driver()).fetchrow(sql, *args)
        except DBAPIError as error:
            if sqlstate_of(error) == "23505":  # the holds' unique request id: the statement is undone
                return "repeated"
            raise
        if row["added"] == 1:
            hold.create_time = hold.update_time = now
            return "held"
        return "taken" if row["place_unchanged"] == 1 else "changed"

    async def confirm_at_once(
        self, hold: Hold, request_id: str, fingerprint: str, now: datetime, events: EventsInStatement
    ) -> bool:
        """ConfirmHold's fast path (_CONFIRM_AT_ONCE), with the unit of work's events written only
        if it confirmed: True if `hold` was HELD and is now CONFIRMED (its update_time set); False
        if nothing was written."""
        args = [hold.id, now, request_id, fingerprint, hold.id]
        sql, args = with_events(_CONFIRM_AT_ONCE, args, events, "EXISTS (SELECT 1 FROM confirmed)")
        try:
            row = await (await self.driver()).fetchrow(sql, *args)
        except DBAPIError as error:
            if sqlstate_of(error) == "23505":  # the request id exists: the statement is undone
                return False
            raise
        if row["update_time"] is None:
            return False
        hold.update_time = row["update_time"]
        return True

    async def replay_or_conflicts(
        self, place_id: str, request_id: str, during: TimeRange, now: datetime
    ) -> tuple[bool, list[tuple[int, datetime, datetime]]]:
        """(whether the request id was used already, the live (unit, start, end) overlapping `during`)."""
        rows = await (await self.driver()).fetch(
            _REPLAY_OR_CONFLICTS, place_id, now, during.start, during.end, request_id
        )
        replay = any(r["replay"] for r in rows)
        return replay, [(r["unit"], r["s"], r["e"]) for r in rows if not r["replay"]]

    async def claim_and_lock(self, request_id: str, operation: str, fingerprint: str, hold_id: str) -> Hold | None:
        """Record the request id (IdempotencyKeyReused if it was used with other parameters) and
        lock the hold's row; the hold or None. One round trip (two when the id was seen before)."""
        db = await self.driver()
        row = await db.fetchrow(_CLAIM_AND_LOCK_HOLD, request_id, operation, fingerprint, hold_id, hold_id)
        if row is None or not row["claimed"]:
            earlier = await db.fetchrow(_EARLIER_REQUEST, request_id)
            if earlier is not None and (earlier["operation"], earlier["fingerprint"]) != (operation, fingerprint):
                raise IdempotencyKeyReused(f"request_id {request_id!r} was already used with other parameters")
        if row is None:
            return None
        values = dict(row)
        del values["claimed"]
        return hold_from_record(values)

    async def save_state_and_confirm_rows(self, hold: Hold) -> None:
        """The hold's new state, and its calendar rows made permanent."""
        db = await self.driver()
        hold.update_time = await db.fetchval(
            _SAVE_STATE_AND_CONFIRM_ROWS, hold.id, hold.state.value, hold.expires_at, hold.reason
        )

    async def save_state_and_free_rows(self, hold: Hold) -> list[tuple[str, datetime, datetime]]:
        """The hold's new state, and its rows taken out of the calendar: (hold_id, start, end) freed."""
        db = await self.driver()
        rows = await db.fetch(_SAVE_STATE_AND_FREE_ROWS, hold.id, hold.state.value, hold.expires_at, hold.reason)
        freed = []
        for r in rows:
            if r["s"] is None:
                hold.update_time = r["update_time"]
            else:
                freed.append((hold.id, r["s"], r["e"]))
        return freed

    async def lock_place(self, place_id: str) -> None:
        """Serialize the calendar writers of one place: one transaction-scoped advisory lock entry.
        Interleaved multi-range inserts then never deadlock on the exclusion constraint."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": place_id})

    async def by_request_id(self, request_id: str) -> Hold | None:
        row = (await self.session.execute(select(holds).where(holds.c.request_id == request_id))).first()
        return hold_from_row(row) if row else None

    async def get(self, hold_id: str, for_update: bool = False) -> Hold | None:
        query = select(holds).where(holds.c.id == hold_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return hold_from_row(row) if row else None

    async def add_if_new(self, hold: Hold) -> bool:
        """Insert the hold unless its request id exists (then False). INSERT first and no SELECT
        before it: one lock mode per relation keeps HoldSlots inside the lock budget."""
        row = (
            await self.session.execute(
                pg_insert(holds)
                .values(
                    id=hold.id,
                    request_id=hold.request_id,
                    fingerprint=hold.fingerprint,
                    kind=hold.kind,
                    place_id=hold.place_id,
                    booking_id=hold.booking_id,
                    holder_id=hold.holder_id,
                    ranges=_ranges_json(hold.ranges),
                    units=hold.units,
                    state=hold.state.value,
                    expires_at=hold.expires_at,
                    reason=hold.reason,
                )
                .on_conflict_do_nothing(index_elements=["request_id"])
                .returning(holds.c.create_time, holds.c.update_time)
            )
        ).first()
        if row is None:
            return False
        hold.create_time, hold.update_time = row.create_time, row.update_time
        return True

    async def save_state(self, hold: Hold) -> None:
        row = (
            await self.session.execute(
                update(holds)
                .where(holds.c.id == hold.id)
                .values(state=hold.state.value, expires_at=hold.expires_at, reason=hold.reason, update_time=func.now())
                .returning(holds.c.update_time)
            )
        ).one()
        hold.update_time = row.update_time

    async def expire(self, hold_ids: list[str], now: datetime) -> list[Hold]:
        """Flip HELD holds past expiry among `hold_ids` to EXPIRED (row locks in id order)."""
        if not hold_ids:
            return []
        rows = (
            await self.session.execute(
                update(holds)
                .where(holds.c.id.in_(sorted(hold_ids)), holds.c.state == "held", holds.c.expires_at <= now)
                .values(state="expired", update_time=func.now())
                .returning(*holds.c)
            )
        ).all()
        return [hold_from_row(r) for r in rows]

    async def expiring(self, now: datetime, limit: int) -> list[str]:
        """Ids of HELD holds past expiry that no one else is handling, oldest first."""
        rows = await self.session.execute(
            select(holds.c.id)
            .where(holds.c.state == "held", holds.c.expires_at <= now)
            .order_by(holds.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [r.id for r in rows]


def _range_literal(r: TimeRange):
    return func.tstzrange(literal(r.start), literal(r.end), literal("[)"))


class SqlAlchemyCalendarRepository:
    def __init__(self, session: AsyncSession, driver: DriverFactory | None = None):
        self.session, self.driver = session, driver

    async def live_entries(
        self, place_id: str, ranges: list[TimeRange], now: datetime
    ) -> list[tuple[int, datetime, datetime]]:
        """(unit, start, end) of the occupied ranges (buffers included) overlapping `ranges`;
        holds past expiry never count."""
        db = await self.driver()
        rows = await db.fetch(_LIVE_ENTRIES, place_id, now, *_text_ranges(ranges))
        return [(r["unit"], r["s"], r["e"]) for r in rows]

    async def free_expired_and_insert(
        self, hold: Hold, unit: int, rows: list[tuple[TimeRange, TimeRange]], now: datetime
    ) -> tuple[set[datetime], list[str]]:
        """Take the rows of expired holds overlapping `rows` out of the calendar, then insert the
        (during, booked) rows on one unit; rows the exclusion constraint refuses are skipped (ON
        CONFLICT DO NOTHING), never raised. Returns the booked starts inserted and the ids of the
        expired holds whose rows were taken out."""
        db = await self.driver()
        during, booked = _text_ranges([d for d, _ in rows]), _text_ranges([b for _, b in rows])
        result = await db.fetch(
            _FREE_EXPIRED_AND_INSERT,
            hold.id,
            hold.place_id,
            unit,
            "block" if hold.kind == "block" else "hold",
            hold.booking_id,
            hold.expires_at,
            *during,
            *booked,
            now,
        )
        return {r["s"] for r in result if r["freed"] is None}, sorted(r["freed"] for r in result if r["freed"])

    async def confirm(self, hold_id: str) -> None:
        c = calendar_entries.c
        await self.session.execute(
            update(calendar_entries).where(c.hold_id == hold_id, c.live).values(kind="confirmed", expires_at=None)
        )

    async def extend_blocks(self, place_id: str, first_unit: int, unit_count: int, now: datetime) -> int:
        """The place's blocks that have not ended cover units `first_unit`..`unit_count - 1` too (a
        place given more units): one more row per block range and new unit. A new unit already
        taken there keeps its entry (the constraint decides). Returns the rows added."""
        added = await self.session.execute(
            text(
                """
                INSERT INTO availability.calendar_entries
                       (hold_id, place_id, unit, during, booked, kind, booking_id, expires_at, live)
                SELECT b.hold_id, b.place_id, u.unit, b.during, b.booked, b.kind, b.booking_id, b.expires_at, true
                  FROM (SELECT DISTINCT ON (hold_id, during) *
                          FROM availability.calendar_entries
                         WHERE place_id = :place_id AND kind = 'block' AND live AND upper(during) > :now) b
                 CROSS JOIN generate_series(CAST(:first_unit AS integer), CAST(:last_unit AS integer)) AS u(unit)
                ON CONFLICT DO NOTHING
                """
            ),
            {"place_id": place_id, "now": now, "first_unit": first_unit, "last_unit": unit_count - 1},
        )
        return added.rowcount

    async def free(self, hold_ids: list[str], lock_wait_ms: int | None = None) -> list[tuple[str, datetime, datetime]]:
        """Take the rows of these holds out of the calendar; returns (hold_id, during) freed.
        `lock_wait_ms`: how long this transaction waits for a row lock from here on (lock_timeout)."""
        if not hold_ids:
            return []
        if lock_wait_ms is not None:
            wait = {"ms": f"{lock_wait_ms}ms"}
            await self.session.execute(text("SELECT set_config('lock_timeout', :ms, true)"), wait)
        c = calendar_entries.c
        rows = await self.session.execute(
            update(calendar_entries)
            .where(c.hold_id.in_(sorted(hold_ids)), c.live)
            .values(live=False)
            .returning(c.hold_id, func.lower(c.during).label("s"), func.upper(c.during).label("e"))
        )
        return [(r.hold_id, r.s, r.e) for r in rows]

    async def entries(self, place_id: str, window: TimeRange, after: tuple | None, limit: int) -> list:
        """Occupying entries (one per hold and booked range, units counted) overlapping `window`,
        by start then hold id; joined with their hold for its reason."""
        c, h = calendar_entries.c, holds.c
        start = func.lower(c.booked)
        query = (
            select(
                c.hold_id,
                c.kind,
                c.booking_id,
                c.expires_at,
                start.label("s"),
                func.upper(c.booked).label("e"),
                func.count().label("units"),
                h.reason,
            )
            .join(holds, h.id == c.hold_id)
            .where(
                c.place_id == place_id,
                c.live,
                or_(c.expires_at.is_(None), c.expires_at > func.now()),
                c.booked.op("&&")(_range_literal(window)),
            )
            .group_by(c.hold_id, c.kind, c.booking_id, c.expires_at, c.booked, h.reason)
            .order_by(start, c.hold_id)
            .limit(limit)
        )
        if after is not None:
            query = query.having(or_(start > after[0], and_(start == after[0], c.hold_id > after[1])))
        return list((await self.session.execute(query)).all())
