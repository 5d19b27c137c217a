"""Repositories of the payments schema: rows <-> domain objects, nothing else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kit.errors import Conflict
from payments.adapters import orm
from payments.domain.model import (
    UNSETTLED,
    LedgerEntry,
    LedgerKind,
    LedgerTotals,
    Payment,
    PaymentKind,
    PaymentStatus,
    PendingOperation,
    Refund,
    RefundStatus,
)
from payments.domain.money import Money

P, L, R = orm.payments, orm.ledger_entries, orm.refunds


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
    def __init__(self, session: AsyncSession):
        self.session = session
        # id -> (version, unsettled) as loaded, for the optimistic check and the unsettled list.
        self._loaded: dict[str, tuple[int, bool]] = {}

    async def add(self, payment: Payment) -> None:
        await self.session.execute(insert(P).values(**_payment_values(payment)))
        await self.session.execute(
            insert(orm.unsettled_payments).values(payment_id=payment.id, since=payment.create_time)
        )
        await self._append_entries(payment)

    async def get(self, payment_id: str, for_update: bool = False) -> Payment | None:
        if for_update:
            # The one row lock that serializes captures, voids and refunds of this payment. Taken
            # with a no-op UPDATE rather than SELECT ... FOR UPDATE: the transaction updates the
            # row anyway, and one lock mode per relation keeps its pg_locks rows (the lock budget)
            # at half of what RowShareLock + RowExclusiveLock on the table and each index cost.
            query = update(P).where(P.c.id == payment_id).values(version=P.c.version).returning(*P.c)
        else:
            query = select(P).where(P.c.id == payment_id)
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            return None
        payment = payment_from_row(row)
        self._loaded[payment.id] = (payment.version, payment.status in UNSETTLED)
        return payment

    async def save(self, payment: Payment) -> None:
        payment.check_invariants()
        loaded_version, was_unsettled = self._loaded[payment.id]
        values = _payment_values(payment)
        for key in ("id", "booking_id", "user_id", "kind", "currency", "amount_minor", "request_id", "create_time"):
            values.pop(key)
        result = await self.session.execute(
            update(P).where(P.c.id == payment.id, P.c.version == loaded_version).values(**values)
        )
        if result.rowcount != 1:
            raise Conflict(f"payment {payment.id} was modified concurrently; retry")
        now_unsettled = payment.status in UNSETTLED
        if was_unsettled and not now_unsettled:
            await self.session.execute(
                delete(orm.unsettled_payments).where(orm.unsettled_payments.c.payment_id == payment.id)
            )
        elif now_unsettled and not was_unsettled:
            await self.session.execute(
                pg_insert(orm.unsettled_payments)
                .values(payment_id=payment.id, since=payment.update_time)
                .on_conflict_do_nothing()
            )
        await self._append_entries(payment)
        self._loaded[payment.id] = (payment.version, now_unsettled)

    async def _append_entries(self, payment: Payment) -> None:
        if not payment.new_entries:
            return
        await self.session.execute(
            insert(L),
            [
                {
                    "payment_id": e.payment_id,
                    "seq": e.seq,
                    "id": e.id,
                    "kind": e.kind.value,
                    "amount_minor": e.amount.amount_minor,
                    "currency": e.amount.currency,
                    "booking_id": e.booking_id,
                    "refund_id": e.refund_id,
                    "create_time": e.create_time,
                }
                for e in payment.new_entries
            ],
        )
        payment.new_entries.clear()

    async def ledger_totals(self, payment_id: str) -> LedgerTotals:
        rows = (
            await self.session.execute(
                select(L.c.kind, func.sum(L.c.amount_minor)).where(L.c.payment_id == payment_id).group_by(L.c.kind)
            )
        ).all()
        sums = {LedgerKind(kind): int(total) for kind, total in rows}
        return LedgerTotals(
            authorized=sums.get(LedgerKind.AUTHORIZATION, 0),
            captured=sums.get(LedgerKind.CAPTURE, 0),
            refunded=sums.get(LedgerKind.REFUND, 0),
            voided=sums.get(LedgerKind.VOID, 0),
            released=sums.get(LedgerKind.RELEASE, 0),
        )

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

    async def save_refund(self, refund: Refund, now: datetime) -> None:
        await self.session.execute(
            update(R)
            .where(R.c.id == refund.id)
            .values(status=refund.status.value, provider_reference=refund.provider_reference, update_time=now)
        )

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

    def __init__(self, session: AsyncSession):
        self.session = session

    async def claim(
        self, request_id: str, operation: str, fingerprint: str, resource_id: str | None, now: datetime
    ) -> dict | None:
        """Insert the key as in progress; None if this call claimed it, else the existing row."""
        table = orm.idempotency_keys
        inserted = (
            await self.session.execute(
                pg_insert(table)
                .values(
                    request_id=request_id,
                    operation=operation,
                    fingerprint=fingerprint,
                    status="in_progress",
                    resource_id=resource_id,
                    create_time=now,
                    update_time=now,
                )
                .on_conflict_do_nothing()
                .returning(literal_column("1"))
            )
        ).first()
        if inserted is not None:
            return None
        row = (
            await self.session.execute(
                select(table).where(table.c.request_id == request_id, table.c.operation == operation)
            )
        ).one()
        return dict(row._mapping)

    async def complete(self, request_id: str, operation: str, result: dict, now: datetime) -> None:
        table = orm.idempotency_keys
        await self.session.execute(
            update(table)
            .where(table.c.request_id == request_id, table.c.operation == operation)
            .values(status="completed", result=result, update_time=now)
        )

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
