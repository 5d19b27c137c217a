"""Repositories of the payments schema: rows <-> domain objects, nothing else."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kit.errors import Conflict
from kit.sql import Driver, EventsInStatement, Row, param_cast, select_list, with_events
from payments.adapters import orm
from payments.domain.model import (
    LedgerEntry,
    LedgerKind,
    Payment,
    PaymentKind,
    PaymentStatus,
    PendingOperation,
    Refund,
    RefundStatus,
)
from payments.domain.money import Money

P, L, R = orm.payments, orm.ledger_entries, orm.refunds

# ---- the authorize/capture/void hot statements in plain SQL (kit.sql) ------------------------------
DriverFactory = Callable[[], Awaitable[Driver]]
# An idempotency key completed by the statement that saves the payment: request id, operation,
# the response, the time.
Completion = tuple[str, str, dict, datetime]
_P_COLUMNS = [c.name for c in P.c]
_P_FIXED = ("id", "booking_id", "user_id", "kind", "currency", "amount_minor", "request_id", "create_time")
_P_UPDATED = [name for name in _P_COLUMNS if name not in _P_FIXED]
_P_SELECT = select_list(P)
_GET_PAYMENT = f"SELECT {_P_SELECT} FROM payments.payments WHERE id = $1::uuid"
# The row lock that serializes a payment's operations, as a no-op UPDATE (see `get`).
_LOCK_PAYMENT = f"UPDATE payments.payments SET version = version WHERE id = $1::uuid RETURNING {_P_SELECT}"
# New ledger entries from text arrays, parameters from `first` on.


def _entries_select(first: int) -> str:
    n = [f"${first + i}::text[]" for i in range(9)]
    return (
        "SELECT e.payment_id::uuid, e.seq::integer, e.id::uuid, e.kind, e.amount_minor::bigint, e.currency, "
        "e.booking_id::uuid, e.refund_id::uuid, e.create_time::timestamptz "
        f"FROM unnest({', '.join(n)}) AS e(payment_id, seq, id, kind, amount_minor, currency, booking_id, refund_id, "
        "create_time)"
    )


def _entry_arrays(entries: list[LedgerEntry]) -> list[list]:
    return [
        [e.payment_id for e in entries],
        [str(e.seq) for e in entries],
        [e.id for e in entries],
        [e.kind.value for e in entries],
        [str(e.amount.amount_minor) for e in entries],
        [e.amount.currency for e in entries],
        [e.booking_id for e in entries],
        [e.refund_id for e in entries],
        [e.create_time.isoformat() for e in entries],
    ]


_INSERT_ENTRIES = (
    "INSERT INTO payments.ledger_entries "
    "(payment_id, seq, id, kind, amount_minor, currency, booking_id, refund_id, create_time)"
)
_NP = len(_P_COLUMNS)
# A new payment, its unsettled mark and its first ledger entries: one statement.
_ADD_PAYMENT = f"""
WITH added AS (
    INSERT INTO payments.payments ({", ".join(_P_COLUMNS)})
    VALUES ({", ".join(f"${i + 1}{param_cast(c)}" for i, c in enumerate(P.c))})
), unsettled AS (
    INSERT INTO payments.unsettled_payments (payment_id, since) VALUES ($1::uuid, ${_NP + 1}::timestamptz)
)
{_INSERT_ENTRIES} {_entries_select(_NP + 2)}
"""
# The request's idempotency key claimed and, only if this call claimed it, the new payment with its
# unsettled mark and first ledger entries: one statement (parameters as _ADD_PAYMENT's, then the
# key's request id, operation, fingerprint and time).
_K = _NP + 11
_CLAIM_AND_ADD_PAYMENT = f"""
WITH claimed AS (
    INSERT INTO payments.idempotency_keys
           (request_id, operation, fingerprint, status, resource_id, create_time, update_time)
    VALUES (${_K}::text, ${_K + 1}::text, ${_K + 2}::text, 'in_progress', $1::uuid, ${_K + 3}::timestamptz,
            ${_K + 3}::timestamptz)
    ON CONFLICT DO NOTHING
    RETURNING 1
), added AS (
    INSERT INTO payments.payments ({", ".join(_P_COLUMNS)})
    SELECT {", ".join(f"${i + 1}{param_cast(c)}" for i, c in enumerate(P.c))} WHERE EXISTS (SELECT 1 FROM claimed)
), unsettled AS (
    INSERT INTO payments.unsettled_payments (payment_id, since)
    SELECT $1::uuid, ${_NP + 1}::timestamptz WHERE EXISTS (SELECT 1 FROM claimed)
), entries AS (
    {_INSERT_ENTRIES} {_entries_select(_NP + 2)} WHERE EXISTS (SELECT 1 FROM claimed)
)
SELECT count(*) FROM claimed
"""
_NU = len(_P_UPDATED)
_UNSETTLED_CHANGE = {
    "none": "",
    "settled": ", unsettled AS (DELETE FROM payments.unsettled_payments "
    "WHERE payment_id = $1::uuid AND EXISTS (SELECT 1 FROM saved))",
    "unsettled": f", unsettled AS (INSERT INTO payments.unsettled_payments (payment_id, since) "
    f"SELECT $1::uuid, ${_NU + 12}::timestamptz WHERE EXISTS (SELECT 1 FROM saved) ON CONFLICT DO NOTHING)",
}


def _updated_param(name: str) -> str:
    return f"${_P_UPDATED.index(name) + 3}::bigint"


# The payment back if nobody changed it since it was loaded (version check), its unsettled mark and
# its new ledger entries: one statement. If it saved, its balances must agree with its ledger (the
# entries there and those it adds, which its own snapshot does not see); otherwise the statement
# fails whole (payments.refuse_unbalanced, migration payments_0008), so that even a save sent as a
# transaction of its own never commits a payment out of step with its ledger.
_SAVE_PAYMENT = f"""
WITH saved AS (
    UPDATE payments.payments
       SET {", ".join(f"{name} = ${i + 3}{param_cast(P.c[name])}" for i, name in enumerate(_P_UPDATED))}
     WHERE id = $1::uuid AND version = $2
    RETURNING 1
){{unsettled}}, entries AS (
    {_INSERT_ENTRIES} {_entries_select(_NU + 3)} WHERE EXISTS (SELECT 1 FROM saved)
)/*completion*//*outbox*/, ledger AS (
    SELECT kind, amount_minor FROM payments.ledger_entries WHERE payment_id = $1::uuid
    UNION ALL
    SELECT e.kind, e.amount_minor FROM ({_entries_select(_NU + 3)}) e
), balance AS (
    SELECT coalesce(sum(amount_minor) FILTER (WHERE kind = 'authorization'), 0)
           - coalesce(sum(amount_minor) FILTER (WHERE kind IN ('capture', 'void', 'release')), 0) AS authorized,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'capture'), 0) AS captured,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund'), 0) AS refunded
      FROM ledger
)
SELECT (SELECT count(*) FROM saved) AS saved,
       (SELECT payments.refuse_unbalanced(
                   $1::uuid, format('outstanding authorization %s, captured %s, refunded %s',
                                    authorized, captured, refunded))
          FROM balance
         WHERE EXISTS (SELECT 1 FROM saved)
           AND (authorized, captured, refunded) IS DISTINCT FROM
               ({_updated_param("authorized_amount")}, {_updated_param("captured_amount")},
                {_updated_param("refunded_amount")})) AS refused
"""
_SAVE_PAYMENT_BY_CHANGE = {
    change: _SAVE_PAYMENT.replace("{unsettled}", cte) for change, cte in _UNSETTLED_CHANGE.items()
}
# The request's key completed with its response, by the statement that saves the payment (and only
# if it saved): $a request id, $b operation, $c result, $d time.
_COMPLETE_KEY_CTE = """, completed AS (
    UPDATE payments.idempotency_keys SET status = 'completed', result = ${c}::jsonb, update_time = ${d}
     WHERE request_id = ${a} AND operation = ${b} AND EXISTS (SELECT 1 FROM saved)
)"""
_CLAIM_KEY = """
INSERT INTO payments.idempotency_keys
       (request_id, operation, fingerprint, status, resource_id, create_time, update_time)
VALUES ($1, $2, $3, 'in_progress', $4::uuid, $5, $5)
ON CONFLICT DO NOTHING
RETURNING 1
"""
_GET_KEY = (
    "SELECT request_id, operation, fingerprint, status, resource_id::text AS resource_id, result, create_time, "
    "update_time FROM payments.idempotency_keys WHERE request_id = $1 AND operation = $2"
)
_COMPLETE_KEY = """
UPDATE payments.idempotency_keys SET status = 'completed', result = $3::jsonb, update_time = $4
 WHERE request_id = $1 AND operation = $2
"""


def _payment_values(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "booking_id": p.booking_id,
        "user_id": p.user_id,
        "kind": p.kind.value,
        "currency": p.currency,
        "amount_minor": p.amount.amount_minor,
        "authorized_amount": p.authorized_amount,
        "captured_amount": p.captured_amount,
        "refunded_amount": p.refunded_amount,
        "refund_pending_amount": p.refund_pending_amount,
        "pending_operation": p.pending_operation.value if p.pending_operation else None,
        "pending_amount": p.pending_amount,
        "status": p.status.value,
        "failure_reason": p.failure_reason,
        "provider_reference": p.provider_reference,
        "authorization_expire_time": p.authorization_expire_time,
        "request_id": p.request_id,
        "create_time": p.create_time,
        "update_time": p.update_time,
        "ledger_seq": p.ledger_seq,
        "version": p.version,
        "void_requested": p.void_requested,
        "void_reason": p.void_reason,
    }


def payment_from_row(row) -> Payment:
    return Payment(
        id=str(row.id),
        booking_id=str(row.booking_id),
        user_id=str(row.user_id),
        kind=PaymentKind(row.kind),
        amount=Money(row.amount_minor, row.currency),
        request_id=row.request_id,
        create_time=row.create_time,
        update_time=row.update_time,
        status=PaymentStatus(row.status),
        authorized_amount=row.authorized_amount,
        captured_amount=row.captured_amount,
        refunded_amount=row.refunded_amount,
        refund_pending_amount=row.refund_pending_amount,
        pending_operation=PendingOperation(row.pending_operation) if row.pending_operation else None,
        pending_amount=row.pending_amount,
        failure_reason=row.failure_reason,
        provider_reference=row.provider_reference,
        authorization_expire_time=row.authorization_expire_time,
        ledger_seq=row.ledger_seq,
        version=row.version,
        void_requested=row.void_requested,
        void_reason=row.void_reason,
    )


def _entry_from_row(row) -> LedgerEntry:
    return LedgerEntry(
        id=str(row.id),
        payment_id=str(row.payment_id),
        seq=row.seq,
        kind=LedgerKind(row.kind),
        amount=Money(row.amount_minor, row.currency),
        booking_id=str(row.booking_id),
        refund_id=str(row.refund_id) if row.refund_id else None,
        create_time=row.create_time,
    )


def _refund_from_row(row) -> Refund:
    return Refund(
        id=str(row.id),
        payment_id=str(row.payment_id),
        amount=Money(row.amount_minor, row.currency),
        reason=row.reason,
        status=RefundStatus(row.status),
        create_time=row.create_time,
        provider_reference=row.provider_reference,
    )


class SqlAlchemyPaymentRepository:
    def __init__(self, session: AsyncSession, driver: DriverFactory | None = None):
        self.session, self.driver = session, driver
        # id -> (version, on the reconciler's list) as loaded, for the optimistic check and that list.
        self._loaded: dict[str, tuple[int, bool]] = {}

    async def add(self, payment: Payment) -> None:
        """The payment, its unsettled mark and its ledger entries: one round trip."""
        values = _payment_values(payment)
        await (await self.driver()).execute(
            _ADD_PAYMENT,
            *[values[name] for name in _P_COLUMNS],
            payment.create_time,
            *_entry_arrays(payment.new_entries),
        )
        payment.new_entries.clear()

    async def add_if_claimed(self, payment: Payment, request_id: str, operation: str, fingerprint: str, now) -> bool:
        """Claim the request's idempotency key and add the payment only if this call claimed it:
        one statement. False (nothing written) if the key was there already."""
        values = _payment_values(payment)
        claimed = await (await self.driver()).fetchval(
            _CLAIM_AND_ADD_PAYMENT,
            *[values[name] for name in _P_COLUMNS],
            payment.create_time,
            *_entry_arrays(payment.new_entries),
            request_id,
            operation,
            fingerprint,
            now,
        )
        if claimed:
            payment.new_entries.clear()
        return bool(claimed)

    async def get(self, payment_id: str, for_update: bool = False) -> Payment | None:
        # for_update: the one row lock that serializes captures, voids and refunds of this payment.
        # Taken with a no-op UPDATE rather than SELECT ... FOR UPDATE: the transaction updates the
        # row anyway, and one lock mode per relation keeps its pg_locks rows (the lock budget) at
        # half of what RowShareLock + RowExclusiveLock on the table and each index cost.
        row = await (await self.driver()).fetchrow(_LOCK_PAYMENT if for_update else _GET_PAYMENT, payment_id)
        if row is None:
            return None
        payment = payment_from_row(Row(row))
        self._loaded[payment.id] = (payment.version, payment.needs_reconciliation)
        return payment

    def adopt(self, payment: Payment) -> None:
        """Take `payment` as loaded: a flow that wrote it itself saves it again without reading it,
        and the save's version check proves nobody changed it since."""
        self._loaded[payment.id] = (payment.version, payment.needs_reconciliation)

    async def save(
        self, payment: Payment, completion: Completion | None = None, events: EventsInStatement | None = None
    ) -> None:
        """Write the payment back (version-checked), its unsettled mark and its new ledger entries,
        refused by the database if its balances would disagree with its ledger. One round trip.
        With `completion` (request id, operation, result, time) the request's idempotency key is
        completed by the same statement, and with `events` the unit of work's events are written by
        it: both only if it saved."""
        payment.check_invariants()
        loaded_version, was_unsettled = self._loaded[payment.id]
        now_unsettled = payment.needs_reconciliation
        change = "none"
        if was_unsettled and not now_unsettled:
            change = "settled"
        elif now_unsettled and not was_unsettled:
            change = "unsettled"
        values = _payment_values(payment)
        sql = _SAVE_PAYMENT_BY_CHANGE[change]
        args = [
            payment.id,
            loaded_version,
            *[values[name] for name in _P_UPDATED],
            *_entry_arrays(payment.new_entries),
            *([payment.update_time] if change == "unsettled" else []),  # the unsettled mark's time
        ]
        completed = ""
        if completion is not None:
            request_id, operation, result, now = completion
            n = len(args)
            completed = _COMPLETE_KEY_CTE.format(a=n + 1, b=n + 2, c=n + 3, d=n + 4)
            args += [request_id, operation, json.dumps(result), now]
        sql, args = with_events(sql.replace("/*completion*/", completed), args, events, "EXISTS (SELECT 1 FROM saved)")
        row = await (await self.driver()).fetchrow(sql, *args)
        if row["saved"] != 1:
            raise Conflict(f"payment {payment.id} was modified concurrently; retry")
        payment.new_entries.clear()
        self._loaded[payment.id] = (payment.version, now_unsettled)

    async def list_for(
        self, *, booking_id: str | None, user_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Payment]:
        """Newest first, keyset on (create_time, id)."""
        column = P.c.booking_id if booking_id else P.c.user_id
        query = select(P).where(column == (booking_id or user_id))
        if after is not None:
            position = tuple_(literal(after[0], type_=P.c.create_time.type), literal(after[1], type_=P.c.id.type))
            query = query.where(tuple_(P.c.create_time, P.c.id) < position)
        query = query.order_by(P.c.create_time.desc(), P.c.id.desc()).limit(limit)
        return [payment_from_row(r) for r in (await self.session.execute(query)).all()]

    async def for_bookings(self, booking_ids: list[str]) -> list[Payment]:
        query = (
            select(P).where(P.c.booking_id.in_(booking_ids)).order_by(P.c.create_time.desc(), P.c.id.desc()).limit(5000)
        )
        return [payment_from_row(r) for r in (await self.session.execute(query)).all()]

    async def ledger(self, payment_id: str, after_seq: int, limit: int) -> list[LedgerEntry]:
        query = select(L).where(L.c.payment_id == payment_id, L.c.seq > after_seq).order_by(L.c.seq).limit(limit)
        return [_entry_from_row(r) for r in (await self.session.execute(query)).all()]

    async def unsettled(self, older_than: datetime, limit: int) -> list[str]:
        U = orm.unsettled_payments
        query = select(U.c.payment_id).where(U.c.since < older_than).order_by(U.c.since).limit(limit)
        return [str(r) for r in (await self.session.execute(query)).scalars()]

    # ---- refunds ---------------------------------------------------------------------------------

    async def add_refund(self, refund: Refund) -> None:
        await self.session.execute(
            insert(R).values(
                id=refund.id,
                payment_id=refund.payment_id,
                amount_minor=refund.amount.amount_minor,
                currency=refund.amount.currency,
                reason=refund.reason,
                status=refund.status.value,
                provider_reference=refund.provider_reference,
                create_time=refund.create_time,
                update_time=refund.create_time,
            )
        )

    async def get_refund(self, refund_id: str) -> Refund | None:
        row = (await self.session.execute(select(R).where(R.c.id == refund_id))).one_or_none()
        return _refund_from_row(row) if row else None

    async def pending_refunds(
        self, created_before: datetime, limit: int, payment_id: str | None = None
    ) -> list[tuple[Refund, str]]:
        """Refunds still PENDING created before `created_before` (of one payment, if given), oldest
        first, each with its payment's provider reference (through the partial index of pending
        refunds)."""
        query = (
            select(R, P.c.provider_reference.label("charge_reference"))
            .join(P, P.c.id == R.c.payment_id)
            .where(R.c.status == RefundStatus.PENDING.value, R.c.create_time < created_before)
            .order_by(R.c.create_time)
            .limit(limit)
        )
        if payment_id is not None:
            query = query.where(R.c.payment_id == payment_id)
        return [(_refund_from_row(r), r.charge_reference) for r in (await self.session.execute(query)).all()]

    async def save_refund(self, refund: Refund, now: datetime) -> bool:
        """Settle a PENDING refund; False if it was settled already (by the reconciler, or the call)."""
        result = await self.session.execute(
            update(R)
            .where(R.c.id == refund.id, R.c.status == RefundStatus.PENDING.value)
            .values(status=refund.status.value, provider_reference=refund.provider_reference, update_time=now)
        )
        return result.rowcount == 1

    # ---- reports ---------------------------------------------------------------------------------

    async def revenue(
        self, start: datetime, end: datetime, time_zone: str, booking_ids: list[str] | None
    ) -> list[tuple[Any, str, int, int, int]]:
        """(local date, currency, captured, refunded, payments with a capture) per day and currency."""
        day = func.date(func.timezone(time_zone, L.c.create_time)).label("day")
        query = select(
            day,
            L.c.currency,
            func.coalesce(func.sum(L.c.amount_minor).filter(L.c.kind == LedgerKind.CAPTURE.value), 0),
            func.coalesce(func.sum(L.c.amount_minor).filter(L.c.kind == LedgerKind.REFUND.value), 0),
            func.count(L.c.payment_id.distinct()).filter(L.c.kind == LedgerKind.CAPTURE.value),
        ).where(
            L.c.create_time >= start,
            L.c.create_time < end,
            L.c.kind.in_([LedgerKind.CAPTURE.value, LedgerKind.REFUND.value]),
        )
        if booking_ids is not None:
            # Through the booking index of payments, then the ledger's primary key.
            query = query.where(L.c.payment_id.in_(select(P.c.id).where(P.c.booking_id.in_(booking_ids))))
        query = query.group_by(day, L.c.currency).order_by(day, L.c.currency)
        return [tuple(r) for r in (await self.session.execute(query)).all()]

    async def revenue_payment_counts(
        self, start: datetime, end: datetime, booking_ids: list[str] | None
    ) -> dict[str, int]:
        """Distinct payments with a capture in the range, per currency (not a sum of daily counts)."""
        query = select(L.c.currency, func.count(L.c.payment_id.distinct())).where(
            L.c.create_time >= start, L.c.create_time < end, L.c.kind == LedgerKind.CAPTURE.value
        )
        if booking_ids is not None:
            query = query.where(L.c.payment_id.in_(select(P.c.id).where(P.c.booking_id.in_(booking_ids))))
        rows = (await self.session.execute(query.group_by(L.c.currency))).all()
        return {currency: int(count) for currency, count in rows}


class SqlAlchemyIdempotencyRepository:
    """Idempotency keys, one row per (request_id, operation)."""

    def __init__(self, session: AsyncSession, driver: DriverFactory | None = None):
        self.session, self.driver = session, driver

    async def claim(
        self, request_id: str, operation: str, fingerprint: str, resource_id: str | None, now: datetime
    ) -> dict | None:
        """Insert the key as in progress; None if this call claimed it, else the existing row."""
        db = await self.driver()
        if await db.fetchval(_CLAIM_KEY, request_id, operation, fingerprint, resource_id, now) is not None:
            return None
        return dict(await db.fetchrow(_GET_KEY, request_id, operation))

    async def complete(self, request_id: str, operation: str, result: dict, now: datetime) -> None:
        await (await self.driver()).execute(_COMPLETE_KEY, request_id, operation, json.dumps(result), now)

    async def sweep(self, older_than: datetime, batch: int) -> int:
        """Delete completed keys created before `older_than`, at most `batch` of them."""
        table = orm.idempotency_keys
        victims = (
            select(table.c.request_id, table.c.operation)
            .where(table.c.create_time < older_than, table.c.status == "completed")
            .limit(batch)
        )
        result = await self.session.execute(
            delete(table).where(tuple_(table.c.request_id, table.c.operation).in_(victims))
        )
        return result.rowcount


class SqlAlchemyProviderEventRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def record(self, event_id: str, event_type: str, payment_id: str | None, now: datetime) -> bool:
        """True the first time an event id is seen (a concurrent duplicate waits, then sees it)."""
        table = orm.provider_events
        inserted = (
            await self.session.execute(
                pg_insert(table)
                .values(event_id=event_id, event_type=event_type, payment_id=payment_id, received_time=now)
                .on_conflict_do_nothing()
                .returning(literal_column("1"))
            )
        ).first()
        return inserted is not None


__all__ = [
    "SqlAlchemyIdempotencyRepository",
    "SqlAlchemyPaymentRepository",
    "SqlAlchemyProviderEventRepository",
]
