"""The booking unit of work: one short transaction, repositories on its session, and the aggregate's
events staged into the outbox by the same commit."""

from __future__ import annotations

from collections.abc import Callable

from booking.adapters.repository import (
    SqlAlchemyBookingRepository,
    SqlAlchemyIdempotencyRepository,
    SqlAlchemyReviewRepository,
    SqlAlchemyWaitlistRepository,
)
from booking.domain.model import Booking, DomainEvent
from kit.db import SqlAlchemyUnitOfWork


class BookingUnitOfWork(SqlAlchemyUnitOfWork):
    event_mapper: Callable[[DomainEvent], object]

    def __init__(self, session_factory, probe, outbox, event_mapper):
        super().__init__(session_factory, probe, outbox)
        self.event_mapper = event_mapper

    def _open(self) -> None:
        self.bookings = SqlAlchemyBookingRepository(self.session, self.driver_handle)
        self.idempotency = SqlAlchemyIdempotencyRepository(self.session)
        self.reviews = SqlAlchemyReviewRepository(self.session)
        self.waitlist = SqlAlchemyWaitlistRepository(self.session)

    def stage(self, *events: DomainEvent) -> None:
        """Events other than a booking's own (reviews, waitlist offers) into this transaction's
        outbox batch."""
        self.events.extend(self.event_mapper(e) for e in events)

    def collect(self, *bookings: Booking, keep: bool = False) -> None:
        """Move the aggregates' pending events into this transaction's outbox batch (copy them with
        `keep`: the caller clears them once written)."""
        for booking in bookings:
            self.events.extend(self.event_mapper(e) for e in booking.events)
            if not keep:
                booking.events.clear()
