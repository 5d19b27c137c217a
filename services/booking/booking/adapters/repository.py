"""PostgreSQL repositories of the booking service. Shallow queries on the booking's own tables, each
statement chosen for the few locks it takes (see orm.py for the index budget)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking.adapters import orm
from booking.domain import model
from booking.domain.errors import StaleEtag
from booking.domain.model import (
    PENDING,
    Booking,
    BookingMode,
    Cancellation,
    DepositKind,
    DepositPolicy,
    Money,
    PendingMove,
    RefundPolicy,
    Review,
    SagaState,
    Status,
    StatusChange,
    TimeRange,
    WaitlistEntry,
    WaitState,
)
from booking.service_layer.queries import ListQuery
from kit.sql import OUTBOX_CTE, Driver, EventsInStatement, Row, param_cast, select_list, with_events

B = orm.bookings


def _ranges_json(ranges) -> list[list[str]]:
    return [[r.start.isoformat(), r.end.isoformat()] for r in ranges]


def _ranges_from_json(data) -> tuple[TimeRange, ...]:
    return tuple(TimeRange(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in data)


def _policy_json(b: Booking) -> dict:
    return {
        "deposit": {
            "kind": b.deposit_policy.kind.value,
            "percent": b.deposit_policy.percent,
            "fixed_minor": b.deposit_policy.fixed_minor,
        },
        "refund": {
            "notice_s": int(b.refund_policy.full_refund_notice.total_seconds()),
            "partial_percent": b.refund_policy.partial_percent,
        },
    }


def _cancellation_json(c: Cancellation | None) -> dict | None:
    if c is None:
        return None
    return {
        "actor_id": c.actor_id,
        "by_host": c.by_host,
        "reason": c.reason,
        "refund_percent": c.refund_percent,
        "refund_minor": c.refund_minor,
        "cancel_time": c.cancel_time.isoformat(),
        "refund_id": c.refund_id,
    }


def _pending_move_json(m: PendingMove | None) -> dict | None:
    if m is None:
        return None
    return {"step": m.step, "old_hold_id": m.old_hold_id, "refund_minor": m.refund_minor}


def _row_values(b: Booking) -> dict:
    return {
        "client_id": b.client_id,
        "host_id": b.host_id,
        "place_id": b.place_id,
        "request_id": b.request_id,
        "fingerprint": b.fingerprint,
        "mode": b.mode.value,
        "status": b.status.value,
        "saga_state": b.saga_state.value,
        "ranges": _ranges_json(b.ranges),
        "first_start": b.start,
        "last_end": b.end,
        "guests": b.guests,
        "units": b.units,
        "price_minor": b.price.amount_minor,
        "deposit_minor": b.deposit.amount_minor,
        "currency": b.price.currency,
        "policy": _policy_json(b),
        "hold_id": b.hold_id,
        "payment_id": b.payment_id,
        "payment_status": b.payment_status,
        "failure_reason": b.failure_reason,
        "note": b.note,
        "series_id": b.series_id,
        "cancellation": _cancellation_json(b.cancellation),
        "pending_move": _pending_move_json(b.pending_move),
        "expire_time": b.expire_time,
        "due_time": b.due_time,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "version": b.version,
    }


def booking_from_row(row) -> Booking:
    policy = row.policy
    c = row.cancellation
    return Booking(
        id=str(row.id),
        client_id=str(row.client_id),
        host_id=str(row.host_id),
        place_id=str(row.place_id),
        mode=BookingMode(row.mode),
        ranges=_ranges_from_json(row.ranges),
        guests=row.guests,
        units=row.units,
        price=Money(row.price_minor, row.currency),
        deposit=Money(row.deposit_minor, row.currency),
        deposit_policy=DepositPolicy(
            DepositKind(policy["deposit"]["kind"]), policy["deposit"]["percent"], policy["deposit"]["fixed_minor"]
        ),
        refund_policy=RefundPolicy(
            timedelta(seconds=policy["refund"]["notice_s"]), policy["refund"]["partial_percent"]
        ),
        status=Status(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        request_id=row.request_id,
        fingerprint=row.fingerprint,
        saga_state=SagaState(row.saga_state),
        hold_id=row.hold_id,
        payment_id=row.payment_id,
        payment_status=row.payment_status,
        failure_reason=row.failure_reason,
        note=row.note,
        series_id=row.series_id,
        expire_time=row.expire_time,
        due_time=row.due_time,
        cancellation=None
        if c is None
        else Cancellation(
            c["actor_id"],
            c["by_host"],
            c["reason"],
            c["refund_percent"],
            c["refund_minor"],
            datetime.fromisoformat(c["cancel_time"]),
            c.get("refund_id", ""),
        ),
        pending_move=None if row.pending_move is None else PendingMove(**row.pending_move),
        version=row.version,
    )


def _history_rows(b: Booking, changes: list[StatusChange]) -> list[dict]:
    return [
        {
            "booking_id": b.id,
            "seq": c.seq,
            "from_status": c.from_status.value if c.from_status else None,
            "to_status": c.to_status.value,
            "actor_id": c.actor_id,
            "reason": c.reason,
            "change_time": c.at,
        }
        for c in changes
    ]


# Ranges travel as JSON and become tstzrange in SQL: a range- or array-typed parameter makes asyncpg
# introspect the catalog on each new connection (about 17 extra locks inside the transaction).
_RANGES_FROM_JSON = (
    "SELECT tstzrange((x->>0)::timestamptz, (x->>1)::timestamptz, '[)') AS during "
    "FROM jsonb_array_elements(CAST(:ranges AS jsonb)) AS x"
)
_INSERT_RANGES = text(
    f"""
    INSERT INTO booking.booking_ranges (booking_id, place_id, during)
    SELECT :booking_id, :place_id, u.during FROM ({_RANGES_FROM_JSON}) u
    """
)


def _ranges_param(ranges) -> str:
    return json.dumps(_ranges_json(ranges))


def _range_params(b: Booking) -> dict:
    return {"booking_id": b.id, "place_id": b.place_id, "ranges": _ranges_param(b.ranges)}


# ---- the saga's hot statements in plain SQL (kit.sql): one round trip each --------------------------
DriverFactory = Callable[[], Awaitable[Driver]]
_JSON_COLUMNS = {"ranges", "policy", "cancellation", "pending_move"}
# Every column but id, with the cast its parameter needs (INSERT ... SELECT infers no types).
_COLUMNS = [c for c in B.c if c.name != "id"]
_CAST = {c.name: param_cast(c) for c in B.c}
_UPDATED = [c.name for c in _COLUMNS if c.name not in ("client_id", "request_id", "fingerprint", "created_at")]
_SELECT_BOOKING = select_list(B)
_HISTORY_VALUES = (
    "SELECT $1::uuid, h.seq::smallint, h.f, h.t, h.a, h.r, h.c::timestamptz "
    "FROM unnest({seq}::text[], {f}::text[], {t}::text[], {a}::text[], {r}::text[], {c}::text[]) "
    "AS h(seq, f, t, a, r, c)"
)


def _history_values(first: int) -> str:
    """History rows from six text arrays, parameters numbered from `first` ($1 is the booking id)."""
    n = [f"${first + i}" for i in range(6)]
    return _HISTORY_VALUES.format(seq=n[0], f=n[1], t=n[2], a=n[3], r=n[4], c=n[5])


def _history_arrays(changes: list[StatusChange]) -> list[list]:
    return [
        [str(c.seq) for c in changes],
        [c.from_status.value if c.from_status else None for c in changes],
        [c.to_status.value for c in changes],
        [c.actor_id for c in changes],
        [c.reason for c in changes],
        [c.at.isoformat() for c in changes],
    ]


def _param(name: str, value):
    if name in _JSON_COLUMNS:
        return None if value is None else json.dumps(value)
    return value


_N = len(_COLUMNS)


# Insert unless the client has too many pending bookings or the request id was used: the booking,
# its ranges and its history in one statement. `pending` and `added` tell which happened.
_ADD_BOOKING = f"""
WITH pending AS (
    SELECT count(*) AS n FROM booking.bookings
     WHERE client_id = $2::uuid AND status = ANY (${_N + 2}::text[])
), added AS (
    INSERT INTO booking.bookings (id, {", ".join(c.name for c in _COLUMNS)})
    SELECT $1::uuid, {", ".join(f"${i + 2}{_CAST[c.name]}" for i, c in enumerate(_COLUMNS))}
      FROM pending WHERE pending.n < ${_N + 3}
    ON CONFLICT (client_id, request_id) DO NOTHING
    RETURNING id, place_id, ranges
), booked_ranges AS (
    INSERT INTO booking.booking_ranges (booking_id, place_id, during)
    SELECT a.id, a.place_id, tstzrange((x->>0)::timestamptz, (x->>1)::timestamptz, '[)')
      FROM added a, jsonb_array_elements(a.ranges) AS x
), history AS (
    INSERT INTO booking.booking_history (booking_id, seq, from_status, to_status, actor_id, reason, change_time)
    {_history_values(_N + 4)} WHERE EXISTS (SELECT 1 FROM added)
){OUTBOX_CTE}
SELECT (SELECT n FROM pending) AS pending, (SELECT count(*) FROM added) AS added
"""
_U = len(_UPDATED)
# The aggregate back if nobody else wrote it since (version check), with its new history rows.
_SAVE_BOOKING = f"""
WITH saved AS (
    UPDATE booking.bookings
       SET {", ".join(f"{name} = ${i + 3}{_CAST[name]}" for i, name in enumerate(_UPDATED))}
     WHERE id = $1::uuid AND version = $2
    RETURNING 1
), history AS (
    INSERT INTO booking.booking_history (booking_id, seq, from_status, to_status, actor_id, reason, change_time)
    {_history_values(_U + 3)} WHERE EXISTS (SELECT 1 FROM saved)
){OUTBOX_CTE}
SELECT count(*) FROM saved
"""
_GET_BOOKING = f"SELECT {_SELECT_BOOKING} FROM booking.bookings WHERE id = $1::uuid"
_GET_BY_REQUEST = f"SELECT {_SELECT_BOOKING} FROM booking.bookings WHERE client_id = $1::uuid AND request_id = $2"
_GET_BY_REQUESTS = (
    f"SELECT {_SELECT_BOOKING} FROM booking.bookings WHERE client_id = $1::uuid AND request_id = ANY($2::text[])"
)


class SqlAlchemyBookingRepository:
    def __init__(self, session: AsyncSession, driver: DriverFactory | None = None):
        self.session, self.driver = session, driver

    async def add_unless_pending_cap(
        self, booking: Booking, cap: int, events: EventsInStatement | None = None
    ) -> tuple[int, bool]:
        """Insert a new booking (with its ranges and history) unless the client already has `cap`
        pending bookings or (client_id, request_id) exists (a retry): (pending count, inserted).
        One round trip; with `events`, the unit of work's events are written by it too, if inserted."""
        db = await self.driver()
        values = _row_values(booking)
        args = [
            booking.id,
            *[_param(c.name, values[c.name]) for c in _COLUMNS],
            [s.value for s in PENDING],
            cap,
            *_history_arrays(booking.new_history),
        ]
        sql, args = with_events(_ADD_BOOKING, args, events, "EXISTS (SELECT 1 FROM added)")
        row = await db.fetchrow(sql, *args)
        if row["added"]:
            booking.new_history.clear()
        return row["pending"], bool(row["added"])

    async def add(self, booking: Booking) -> bool:
        """Insert a new booking; False if (client_id, request_id) exists already (a retry)."""
        inserted = (
            await self.session.execute(
                pg_insert(B)
                .values(id=booking.id, **_row_values(booking))
                .on_conflict_do_nothing(index_elements=["client_id", "request_id"])
                .returning(B.c.id)
            )
        ).scalar()
        if inserted is None:
            return False
        await self.session.execute(_INSERT_RANGES, _range_params(booking))
        await self.session.execute(insert(orm.booking_history), _history_rows(booking, booking.new_history))
        booking.new_history.clear()
        return True

    async def get(self, booking_id: str) -> Booking | None:
        row = await (await self.driver()).fetchrow(_GET_BOOKING, booking_id)
        return None if row is None else booking_from_row(Row(row))

    async def get_by_request(self, client_id: str, request_id: str) -> Booking | None:
        row = await (await self.driver()).fetchrow(_GET_BY_REQUEST, client_id, request_id)
        return None if row is None else booking_from_row(Row(row))

    async def get_by_requests(self, client_id: str, request_ids: list[str]) -> list[Booking | None]:
        """The client's bookings made under these request ids, in their order (None where none)."""
        rows = await (await self.driver()).fetch(_GET_BY_REQUESTS, client_id, request_ids)
        found = {b.request_id: b for b in (booking_from_row(Row(r)) for r in rows)}
        return [found.get(request_id) for request_id in request_ids]

    async def load_history(self, booking: Booking) -> None:
        h = orm.booking_history
        rows = (await self.session.execute(select(h).where(h.c.booking_id == booking.id).order_by(h.c.seq))).all()
        booking.history = [
            StatusChange(
                Status(r.from_status) if r.from_status else None,
                Status(r.to_status),
                r.actor_id,
                r.reason,
                r.change_time,
                r.seq,
            )
            for r in rows
        ]

    async def save(
        self,
        booking: Booking,
        expected_version: int,
        ranges_changed: bool = False,
        events: EventsInStatement | None = None,
    ) -> None:
        """Write the aggregate back if nobody else did since it was read (optimistic concurrency),
        with its new history rows: one round trip; with `events`, the unit of work's events are
        written by it too, if it saved."""
        values = _row_values(booking)
        args = [
            booking.id,
            expected_version,
            *[_param(name, values[name]) for name in _UPDATED],
            *_history_arrays(booking.new_history),
        ]
        sql, args = with_events(_SAVE_BOOKING, args, events, "EXISTS (SELECT 1 FROM saved)")
        saved = await (await self.driver()).fetchval(sql, *args)
        if saved != 1:
            raise StaleEtag()
        booking.new_history.clear()
        if ranges_changed:
            r = orm.booking_ranges
            await self.session.execute(r.delete().where(r.c.place_id == booking.place_id, r.c.booking_id == booking.id))
            await self.session.execute(_INSERT_RANGES, _range_params(booking))

    async def count_pending(self, client_id: str) -> int:
        return (
            await self.session.execute(
                select(func.count())
                .select_from(B)
                .where(B.c.client_id == client_id, B.c.status.in_([s.value for s in model.PENDING]))
            )
        ).scalar_one()

    async def reject_overlapping_requests(
        self, place_id: str, approved_id: str, ranges, actor: str, reason: str, now: datetime
    ) -> list[Booking]:
        """Reject every other REQUESTED booking of the place overlapping `ranges`: one UPDATE ... FROM
        booking_ranges ... RETURNING plus one INSERT of their history rows. Returns the rejected."""
        stmt = text(
            f"""
            WITH rejected AS (
                UPDATE booking.bookings b
                   SET status = 'rejected', saga_state = 'done', expire_time = NULL, due_time = NULL,
                       updated_at = :now, version = b.version + 1
                  FROM (SELECT DISTINCT r.booking_id
                          FROM ({_RANGES_FROM_JSON}) u
                          JOIN booking.booking_ranges r ON r.place_id = :place_id AND r.during && u.during
                         WHERE r.booking_id <> :approved_id) hit
                 WHERE b.id = hit.booking_id AND b.status = 'requested'
                RETURNING b.*
            ), history AS (
                INSERT INTO booking.booking_history
                       (booking_id, seq, from_status, to_status, actor_id, reason, change_time)
                SELECT id, version, 'requested', 'rejected', :actor, :reason, :now FROM rejected
            )
            SELECT * FROM rejected
            """
        )
        rows = (
            await self.session.execute(
                stmt,
                {
                    "now": now,
                    "place_id": place_id,
                    "approved_id": approved_id,
                    "actor": actor,
                    "reason": reason,
                    "ranges": _ranges_param(ranges),
                },
            )
        ).all()
        rejected = [booking_from_row(r) for r in rows]
        for b in rejected:
            b.events.append(model.BookingEvent("rejected", b, Status.REQUESTED, reason))
        return rejected

    async def claim_due(self, now: datetime, limit: int, statuses: tuple[Status, ...] | None = None) -> list[Booking]:
        """Bookings whose deadline passed, oldest first, locked; others' claimed rows are skipped."""
        q = select(B).where(B.c.due_time.is_not(None), B.c.due_time <= now)
        if statuses:
            q = q.where(B.c.status.in_([s.value for s in statuses]))
        rows = (
            await self.session.execute(q.order_by(B.c.due_time).limit(limit).with_for_update(skip_locked=True, of=B))
        ).all()
        return [booking_from_row(r) for r in rows]

    async def extend_leases(self, booking_ids: list[str], until: datetime) -> None:
        """Keep the recovery worker off bookings whose flow is alive (a series' occurrences waiting
        for their turn): the due time of those still HELD with a flow in progress moves to `until`.
        The version stays, as under the worker's own lease: the flow's copies stay current."""
        running = [SagaState.HOLDING, SagaState.AUTHORIZING, SagaState.CONFIRMING]
        await self.session.execute(
            update(B)
            .where(B.c.id.in_(booking_ids), B.c.status == Status.HELD.value, B.c.saga_state.in_(running))
            .values(due_time=until)
        )

    async def list(self, q: ListQuery) -> list[Booking]:
        sort_col = {"first_start": B.c.first_start, "created_at": B.c.created_at, "updated_at": B.c.updated_at}[
            q.order_field
        ]
        stmt = select(B)
        if q.client_id:
            stmt = stmt.where(B.c.client_id == q.client_id)
        if q.host_id:
            stmt = stmt.where(B.c.host_id == q.host_id)
        if q.place_id:
            stmt = stmt.where(B.c.place_id == q.place_id)
        if q.statuses:
            stmt = stmt.where(B.c.status.in_([s.value for s in q.statuses]))
        if q.overlapping is not None:
            stmt = stmt.where(B.c.first_start < q.overlapping.end, B.c.last_end > q.overlapping.start)
        if q.after is not None:
            key = tuple_(sort_col, B.c.id)
            value = tuple_(
                bindparam("after_v", q.after[0], type_=sort_col.type),
                bindparam("after_id", q.after[1], type_=B.c.id.type),
            )
            stmt = stmt.where(key < value if q.descending else key > value)
        order = [sort_col.desc(), B.c.id.desc()] if q.descending else [sort_col, B.c.id]
        rows = (await self.session.execute(stmt.order_by(*order).limit(q.page_size + 1))).all()
        return [booking_from_row(r) for r in rows]

    async def stats(self, host_id: str, place_id: str, window: TimeRange, tz: str) -> list:
        """Counts per local day and status, and revenue: what the bookings' payments captured less
        what they refunded, as the bookings record it. A full prepayment is captured at confirmation
        (the price; a deposit's no-show keeps the deposit), a deposit's booking only when it ends
        (the price once completed), a cancellation keeps the charged amount (the deposit column: the
        price when prepaid) less its refund; a capture the processor refused keeps nothing."""
        stmt = text(
            """
            SELECT (first_start AT TIME ZONE :tz)::date AS day, status, count(*) AS n,
                   currency,
                   sum(CASE
                         WHEN status IN ('confirmed', 'completed') AND payment_status = 'captured'
                           THEN price_minor
                         WHEN status = 'no_show' AND payment_status = 'captured'
                           THEN deposit_minor
                         WHEN status = 'cancelled' AND payment_status IN ('captured', 'authorized')
                              AND (cancellation ->> 'refund_percent')::int < 100
                           THEN greatest(deposit_minor - (cancellation ->> 'refund_minor')::bigint, 0)
                         ELSE 0 END) AS revenue,
                   count(*) FILTER (WHERE status = 'cancelled' AND payment_id <> '') AS confirmed_before
              FROM booking.bookings
             WHERE first_start >= :start AND first_start < :end
               AND (:host_id = '' OR host_id = CAST(NULLIF(:host_id, '') AS uuid))
               AND (:place_id = '' OR place_id = CAST(NULLIF(:place_id, '') AS uuid))
             GROUP BY 1, 2, 4
             ORDER BY 1, 2
            """
        )
        params = {"tz": tz, "start": window.start, "end": window.end, "host_id": host_id, "place_id": place_id}
        return (await self.session.execute(stmt, params)).all()


class SqlAlchemyIdempotencyRepository:
    """Request ids of calls that create no booking row of their own (approve, cancel, reviews, ...)."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def claim(self, key: str, fingerprint: str, resource_id: str) -> str | None:
        """Record the key; returns None when new, or the stored resource id when this is a retry.
        The same key with another fingerprint is IDEMPOTENCY_KEY_REUSED."""
        t = orm.idempotency
        inserted = (
            await self.session.execute(
                pg_insert(t)
                .values(key=key, fingerprint=fingerprint, resource_id=resource_id)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(t.c.key)
            )
        ).scalar()
        if inserted is not None:
            return None
        row = (await self.session.execute(select(t.c.fingerprint, t.c.resource_id).where(t.c.key == key))).one()
        if row.fingerprint != fingerprint:
            from kit.errors import IdempotencyKeyReused

            raise IdempotencyKeyReused("this request_id was already used with other parameters")
        return row.resource_id


def _review_from_row(r) -> Review:
    reply = r.reply or {}
    return Review(
        id=str(r.id),
        booking_id=str(r.booking_id),
        place_id=str(r.place_id),
        client_id=str(r.client_id),
        host_id=str(r.host_id),
        rating=r.rating,
        text=r.text,
        created_at=r.created_at,
        updated_at=r.updated_at,
        reply_text=reply.get("text", ""),
        reply_author=reply.get("author_id", ""),
        reply_time=datetime.fromisoformat(reply["time"]) if reply.get("time") else None,
        hidden=r.hidden,
        hide_reason=r.hide_reason,
    )


class SqlAlchemyReviewRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, review: Review) -> bool:
        t = orm.reviews
        inserted = (
            await self.session.execute(
                pg_insert(t)
                .values(
                    id=review.id,
                    booking_id=review.booking_id,
                    place_id=review.place_id,
                    client_id=review.client_id,
                    host_id=review.host_id,
                    rating=review.rating,
                    text=review.text,
                    created_at=review.created_at,
                    updated_at=review.updated_at,
                )
                .on_conflict_do_nothing(index_elements=["booking_id"])
                .returning(t.c.id)
            )
        ).scalar()
        return inserted is not None

    async def get(self, review_id: str) -> Review | None:
        row = (await self.session.execute(select(orm.reviews).where(orm.reviews.c.id == review_id))).first()
        return None if row is None else _review_from_row(row)

    async def get_by_booking(self, booking_id: str) -> Review | None:
        t = orm.reviews
        row = (await self.session.execute(select(t).where(t.c.booking_id == booking_id))).first()
        return None if row is None else _review_from_row(row)

    async def save(self, review: Review) -> None:
        reply = (
            {"text": review.reply_text, "author_id": review.reply_author, "time": review.reply_time.isoformat()}
            if review.reply_time
            else None
        )
        t = orm.reviews
        await self.session.execute(
            update(t)
            .where(t.c.id == review.id)
            .values(reply=reply, hidden=review.hidden, hide_reason=review.hide_reason, updated_at=review.updated_at)
        )

    async def apply_rating(self, place_id: str, rating: int, delta: int) -> None:
        """Incremental aggregate: add (delta=1) or remove (delta=-1) one rating; never a recount."""
        t = orm.place_ratings
        if delta < 0:
            # Not an upsert: the INSERT's candidate row (negative count) would fail the CHECK
            # constraint before ON CONFLICT is considered. A removal always has a row to update.
            await self.session.execute(
                update(t)
                .where(t.c.place_id == place_id)
                .values(rating_sum=t.c.rating_sum - rating, rating_count=t.c.rating_count - 1)
            )
            return
        stmt = pg_insert(t).values(place_id=place_id, rating_sum=rating * delta, rating_count=delta)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["place_id"],
                set_={
                    "rating_sum": t.c.rating_sum + rating * delta,
                    "rating_count": t.c.rating_count + delta,
                },
            )
        )

    async def rating_of(self, place_id: str) -> tuple[int, int]:
        t = orm.place_ratings
        row = (await self.session.execute(select(t).where(t.c.place_id == place_id))).first()
        return (0, 0) if row is None else (row.rating_sum, row.rating_count)

    async def list(
        self, place_id: str, include_hidden: bool, page_size: int, after: tuple[datetime, str] | None
    ) -> list[Review]:
        t = orm.reviews
        stmt = select(t).where(t.c.place_id == place_id)
        if not include_hidden:
            stmt = stmt.where(t.c.hidden.is_(False))
        if after is not None:
            stmt = stmt.where(
                tuple_(t.c.created_at, t.c.id)
                < tuple_(
                    bindparam("a_t", after[0], type_=t.c.created_at.type),
                    bindparam("a_id", after[1], type_=t.c.id.type),
                )
            )
        rows = (
            await self.session.execute(stmt.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(page_size + 1))
        ).all()
        return [_review_from_row(r) for r in rows]


def _entry_from_row(r) -> WaitlistEntry:
    return WaitlistEntry(
        id=str(r.id),
        place_id=str(r.place_id),
        client_id=str(r.client_id),
        range=TimeRange(r.range_start, r.range_end),
        guests=r.guests,
        units=r.units,
        state=WaitState(r.state),
        created_at=r.created_at,
        updated_at=r.updated_at,
        hold_id=r.hold_id,
        offer_expire_time=r.offer_expire_time,
        position=getattr(r, "position", 0) or 0,
        booking_id=str(r.booking_id or ""),
    )


_W = orm.waitlist
_W_SELECT = select(
    *[c for c in _W.c if c.name != "during"],
    func.lower(_W.c.during).label("range_start"),
    func.upper(_W.c.during).label("range_end"),
)
_EARLIER = _W.alias("earlier")
# A WAITING entry's place in line: 1 + the WAITING entries of its place, over an overlapping range,
# that joined before it (creation time, then id). 0 for any other state.
_POSITION = (
    select(func.count() + 1)
    .where(
        _EARLIER.c.place_id == _W.c.place_id,
        _EARLIER.c.state == WaitState.WAITING.value,
        _EARLIER.c.during.op("&&")(_W.c.during),
        tuple_(_EARLIER.c.created_at, _EARLIER.c.id) < tuple_(_W.c.created_at, _W.c.id),
    )
    .scalar_subquery()
)
_W_SELECT_POSITION = _W_SELECT.add_columns(
    case((_W.c.state == WaitState.WAITING.value, _POSITION), else_=0).label("position")
)
_WAITLIST_COLUMNS = """w.id, w.place_id, w.client_id, w.guests, w.units, w.state, w.hold_id,
                           w.offer_expire_time, w.created_at, w.updated_at, w.booking_id,
                           lower(w.during) AS range_start, upper(w.during) AS range_end"""


class SqlAlchemyWaitlistRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, e: WaitlistEntry) -> None:
        await self.session.execute(
            text(
                """
                INSERT INTO booking.waitlist
                       (id, place_id, client_id, during, guests, units, state, created_at, updated_at)
                VALUES (:id, :place_id, :client_id, tstzrange(:s, :e, '[)'), :guests, :units, :state, :now, :now)
                """
            ),
            {
                "id": e.id,
                "place_id": e.place_id,
                "client_id": e.client_id,
                "s": e.range.start,
                "e": e.range.end,
                "guests": e.guests,
                "units": e.units,
                "state": e.state.value,
                "now": e.created_at,
            },
        )

    async def get(self, entry_id: str, position: bool = False) -> WaitlistEntry | None:
        """One entry; with `position`, its place in line too."""
        stmt = _W_SELECT_POSITION if position else _W_SELECT
        row = (await self.session.execute(stmt.where(orm.waitlist.c.id == entry_id))).first()
        return None if row is None else _entry_from_row(row)

    async def lock(self, entry_id: str) -> WaitlistEntry | None:
        """One entry, locked for this transaction (a booking taking its offer, the offer sweep)."""
        stmt = _W_SELECT.where(orm.waitlist.c.id == entry_id).with_for_update()
        row = (await self.session.execute(stmt)).first()
        return None if row is None else _entry_from_row(row)

    async def save(self, e: WaitlistEntry) -> None:
        t = orm.waitlist
        await self.session.execute(
            update(t)
            .where(t.c.id == e.id)
            .values(
                state=e.state.value,
                hold_id=e.hold_id,
                offer_expire_time=e.offer_expire_time,
                updated_at=e.updated_at,
                booking_id=e.booking_id or None,
            )
        )

    async def first_waiting(
        self, place_id: str, ranges, now: datetime, passed: tuple[str, ...] = ()
    ) -> WaitlistEntry | None:
        """The longest-waiting WAITING entry overlapping any freed range whose range has not
        started, other than the `passed` ones (tried already), locked (others skip it)."""
        rows = (
            await self.session.execute(
                text(
                    f"""
                    SELECT {_WAITLIST_COLUMNS}
                      FROM booking.waitlist w
                     WHERE w.place_id = :place_id AND w.state = 'waiting' AND lower(w.during) > :now
                       AND EXISTS (SELECT 1 FROM ({_RANGES_FROM_JSON}) u WHERE w.during && u.during)
                       AND NOT CAST(:passed AS jsonb) @> to_jsonb(w.id::text)
                     ORDER BY w.created_at, w.id
                     LIMIT 1
                       FOR UPDATE OF w SKIP LOCKED
                    """
                ),
                {"place_id": place_id, "ranges": _ranges_param(ranges), "now": now, "passed": json.dumps(list(passed))},
            )
        ).all()
        return _entry_from_row(rows[0]) if rows else None

    async def lapsed(self, now: datetime, limit: int) -> list[WaitlistEntry]:
        """OFFERED entries whose offer ran out and WAITING ones whose range has started, locked (a
        concurrent sweep skips them)."""
        rows = (
            await self.session.execute(
                text(
                    f"""
                    SELECT {_WAITLIST_COLUMNS}
                      FROM booking.waitlist w
                     WHERE (w.state = 'offered' AND w.offer_expire_time <= :now)
                        OR (w.state = 'waiting' AND lower(w.during) <= :now)
                     ORDER BY w.updated_at
                     LIMIT :limit
                       FOR UPDATE OF w SKIP LOCKED
                    """
                ),
                {"now": now, "limit": limit},
            )
        ).all()
        return [_entry_from_row(r) for r in rows]

    async def list(self, place_id: str, client_id: str, states, page_size: int, offset: int) -> list[WaitlistEntry]:
        t = orm.waitlist
        stmt = _W_SELECT_POSITION.where(t.c.state.in_([s.value for s in states]))
        if place_id:
            stmt = stmt.where(t.c.place_id == place_id)
        if client_id:
            stmt = stmt.where(t.c.client_id == client_id)
        stmt = stmt.order_by(func.lower(t.c.during), t.c.created_at, t.c.id).offset(offset).limit(page_size + 1)
        return [_entry_from_row(r) for r in (await self.session.execute(stmt)).all()]
