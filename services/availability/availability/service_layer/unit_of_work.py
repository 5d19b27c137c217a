"""The unit of work of the availability service: one short transaction with its repositories.
Domain events appended to `events` become outbox messages in the same transaction on commit."""

from __future__ import annotations

from availability.adapters import event_mapping
from availability.adapters.repository import (
    SqlAlchemyCalendarRepository,
    SqlAlchemyHoldRepository,
    SqlAlchemyPlaceRepository,
    SqlAlchemyRequestRepository,
)
from availability.adapters.search import SqlAlchemySearch
from kit.db import SqlAlchemyUnitOfWork


class AvailabilityUnitOfWork(SqlAlchemyUnitOfWork):
    def _open(self) -> None:
        self.places = SqlAlchemyPlaceRepository(self.session)
        self.requests = SqlAlchemyRequestRepository(self.session)
        self.holds = SqlAlchemyHoldRepository(self.session, self.driver_handle)
        self.calendar = SqlAlchemyCalendarRepository(self.session, self.driver_handle)
        self.search = SqlAlchemySearch(self.session, self.driver_handle)

    def events_in_statement(self, first: int, when: str, to_message=event_mapping.to_outbox) -> tuple[str, list]:
        """The pending domain events as an outbox INSERT inside the caller's statement (kit)."""
        return super().events_in_statement(first, when, to_message)

    async def commit(self) -> None:
        self.events = [event_mapping.to_outbox(e) for e in self.events]
        await super().commit()
