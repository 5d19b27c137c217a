"""The identity unit of work: one short transaction over users and refresh tokens."""

from __future__ import annotations

from gateway.adapters.repository import SqlAlchemyRefreshTokenRepository, SqlAlchemyUserRepository
from kit.db import SqlAlchemyUnitOfWork


class IdentityUnitOfWork(SqlAlchemyUnitOfWork):
    users: SqlAlchemyUserRepository
    refresh_tokens: SqlAlchemyRefreshTokenRepository

    def _open(self) -> None:
        self.users = SqlAlchemyUserRepository(self.session)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(self.session)
