"""The payments unit of work: one short transaction with the repositories on its session. The
aggregate's domain events become outbox rows in the same transaction (commit)."""

from __future__ import annotations

from kit.db import SqlAlchemyUnitOfWork
from payments.adapters.event_mapping import to_outbox
from payments.adapters.repository import (
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
        self.payments = SqlAlchemyPaymentRepository(self.session, self.driver)
        self.idempotency = SqlAlchemyIdempotencyRepository(self.session, self.driver)
        self.provider_events = SqlAlchemyProviderEventRepository(self.session)

    async def save(self, payment: Payment) -> None:
        """Persist the payment and its new ledger entries, check the balances against the whole
        ledger, and stage its events for the outbox."""
        totals = await self.payments.save(payment)
        if not payment.matches_ledger(totals):
            raise AssertionError(f"payment {payment.id} balances disagree with its ledger: {totals}")
        self.events.extend(to_outbox(event) for event in payment.events)
        payment.events.clear()
