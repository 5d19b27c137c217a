"""The payments unit of work: one short transaction with the repositories on its session. The
aggregate's domain events become outbox rows in the same transaction (commit)."""

from __future__ import annotations

from kit.db import SqlAlchemyUnitOfWork
from payments.adapters.event_mapping import to_outbox
from payments.adapters.repository import (
    Completion,
    SqlAlchemyIdempotencyRepository,
    SqlAlchemyPaymentRepository,
    SqlAlchemyProviderEventRepository,
)
from payments.domain.model import Payment


class SqlAlchemyPaymentsUnitOfWork(SqlAlchemyUnitOfWork):
    payments: SqlAlchemyPaymentRepository
    idempotency: SqlAlchemyIdempotencyRepository
    provider_events: SqlAlchemyProviderEventRepository

    def _open(self) -> None:
        self.payments = SqlAlchemyPaymentRepository(self.session, self.driver_handle)
        self.idempotency = SqlAlchemyIdempotencyRepository(self.session, self.driver_handle)
        self.provider_events = SqlAlchemyProviderEventRepository(self.session)

    async def save(self, payment: Payment, completion: Completion | None = None) -> None:
        """Persist the payment and its new ledger entries (the database refuses balances that
        disagree with the whole ledger), and stage its events for the outbox. With `completion`
        (request id, operation, result, time) the request's key is completed and this unit of work's
        events are written by the same statement, which then is the transaction's last (and may be
        a lone statement: see lone_statement)."""
        if completion is None:
            await self.payments.save(payment)
            self.events.extend(to_outbox(event) for event in payment.events)
        else:
            self.events.extend(to_outbox(event) for event in payment.events)
            await self.payments.save(payment, completion, self.events_in_statement)
        payment.events.clear()
