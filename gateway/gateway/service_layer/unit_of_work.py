"""The identity unit of work: one short transaction over users, refresh tokens, calendar feed links
and contact shares."""

from __future__ import annotations

from gateway.adapters.repository import (
    SqlAlchemyCalendarFeedRepository,
    SqlAlchemyContactShareRepository,
    SqlAlchemyRefreshTokenRepository,
    SqlAlchemyUserRepository,
)
from kit.db import SqlAlchemyUnitOfWork


class IdentityUnitOfWork(SqlAlchemyUnitOfWork):
    users: SqlAlchemyUserRepository
    refresh_tokens: SqlAlchemyRefreshTokenRepository
    calendar_feeds: SqlAlchemyCalendarFeedRepository
    contact_shares: SqlAlchemyContactShareRepository

    def _open(self) -> None:
        self.users = SqlAlchemyUserRepository(self.session)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(self.session)
        self.calendar_feeds = SqlAlchemyCalendarFeedRepository(self.session)
        self.contact_shares = SqlAlchemyContactShareRepository(self.session)
