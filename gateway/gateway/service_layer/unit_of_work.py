"""The identity unit of work: one short transaction over users, refresh tokens and calendar feed links."""

from __future__ import annotations

from gateway.adapters.repository import (
    SqlAlchemyCalendarFeedRepository,
    SqlAlchemyRefreshTokenRepository,
    SqlAlchemyUserRepository,
)
from kit.db import SqlAlchemyUnitOfWork


class IdentityUnitOfWork(SqlAlchemyUnitOfWork):
    users: SqlAlchemyUserRepository
    refresh_tokens: SqlAlchemyRefreshTokenRepository
    calendar_feeds: SqlAlchemyCalendarFeedRepository

    def _open(self) -> None:
        self.users = SqlAlchemyUserRepository(self.session)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(self.session)
        self.calendar_feeds = SqlAlchemyCalendarFeedRepository(self.session)
