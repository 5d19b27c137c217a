"""Users, refresh tokens, calendar feed links and contact shares on PostgreSQL (SQLAlchemy Core on
the identity schema)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.adapters.orm import calendar_feeds, contact_shares, refresh_tokens, users
from gateway.domain.model import ContactShare, RevocationReason, User, UserFilter, UserStats


def _to_user(row) -> User:
    return User(
        id=str(row.id),
        email=row.email,
        name=row.name,
        roles=frozenset(row.roles),
        password_hash=row.password_hash,
        phone=row.phone,
        time_zone=row.time_zone,
        locale=row.locale,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SqlAlchemyUserRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, user: User) -> bool:
        """Insert; False when the e-mail is taken (the unique key decides, not a prior read)."""
        statement = (
            insert(users)
            .values(
                id=user.id,
                email=user.email,
                name=user.name,
                phone=user.phone,
                time_zone=user.time_zone,
                locale=user.locale,
                roles=sorted(user.roles),
                password_hash=user.password_hash,
                active=user.active,
            )
            .on_conflict_do_nothing(index_elements=[users.c.email])
            .returning(users.c.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def get(self, user_id: str, for_update: bool = False) -> User | None:
        query = sa.select(users).where(users.c.id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return _to_user(row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = (await self.session.execute(sa.select(users).where(users.c.email == email))).one_or_none()
        return _to_user(row) if row else None

    async def update(self, user: User) -> User:
        row = (
            await self.session.execute(
                sa.update(users)
                .where(users.c.id == user.id)
                .values(
                    name=user.name,
                    phone=user.phone,
                    time_zone=user.time_zone,
                    locale=user.locale,
                    roles=sorted(user.roles),
                    password_hash=user.password_hash,
                    active=user.active,
                    updated_at=sa.func.now(),
                )
                .returning(users)
            )
        ).one()
        return _to_user(row)

    async def list(self, where: UserFilter, after_email: str | None, limit: int) -> list[User]:
        """A keyset page ordered by e-mail (the unique index serves it)."""
        query = sa.select(users).order_by(users.c.email).limit(limit)
        if after_email is not None:
            query = query.where(users.c.email > after_email)
        if where.query:
            pattern = _like(where.query)
            query = query.where(sa.or_(users.c.email.ilike(pattern), users.c.name.ilike(pattern)))
        if where.role:
            query = query.where(sa.literal(where.role) == sa.any_(users.c.roles))
        if where.active is not None:
            query = query.where(users.c.active.is_(where.active))
        return [_to_user(row) for row in (await self.session.execute(query)).all()]

    async def get_many(self, user_ids: list[str]) -> dict[str, User]:
        if not user_ids:
            return {}
        rows = await self.session.execute(sa.select(users).where(users.c.id.in_(user_ids)))
        return {str(row.id): _to_user(row) for row in rows}

    async def set_active(self, user_ids: list[str], active: bool) -> list[str]:
        """Flip `active` for the given users; the ids actually changed."""
        result = await self.session.execute(
            sa.update(users)
            .where(users.c.id.in_(user_ids), users.c.active.is_not(active))
            .values(active=active, updated_at=sa.func.now())
            .returning(users.c.id)
        )
        return [str(i) for i in result.scalars()]

    async def set_roles(self, user_ids: list[str], roles: frozenset[str]) -> list[str]:
        result = await self.session.execute(
            sa.update(users)
            .where(users.c.id.in_(user_ids))
            .values(roles=sorted(roles), updated_at=sa.func.now())
            .returning(users.c.id)
        )
        return [str(i) for i in result.scalars()]

    async def stats(self, start: datetime, end: datetime, time_zone: str) -> UserStats:
        """Counts by aggregate SQL: never rows loaded into Python."""
        totals = (await self.session.execute(sa.select(sa.func.count(), sa.func.count().filter(users.c.active)))).one()
        role = sa.func.unnest(users.c.roles).label("role")
        by_role_query = sa.select(role, sa.func.count()).group_by(sa.text("role"))
        by_role = {r: n for r, n in (await self.session.execute(by_role_query)).all()}
        day = sa.cast(sa.func.timezone(time_zone, users.c.created_at), sa.Date).label("day")
        per_day_query = (
            sa.select(day, sa.func.count())
            .where(users.c.created_at >= start, users.c.created_at < end)
            .group_by(sa.text("day"))
            .order_by(sa.text("day"))
        )
        per_day = [(d.isoformat(), n) for d, n in (await self.session.execute(per_day_query)).all()]
        return UserStats(total=totals[0], active=totals[1], by_role=by_role, signups_per_day=per_day)


class SqlAlchemyRefreshTokenRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, token_id: str, user_id: str, token_hash: str, expires_at: datetime) -> None:
        await self.session.execute(
            sa.insert(refresh_tokens).values(id=token_id, user_id=user_id, token_hash=token_hash, expires_at=expires_at)
        )

    async def get_for_update(self, token_hash: str):
        query = sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).with_for_update()
        return (await self.session.execute(query)).one_or_none()

    async def revoke(self, token_id: str, reason: RevocationReason) -> None:
        """Revoke one token, unless already revoked (its first reason stays)."""
        await self.session.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.id == token_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now(), revoked_reason=reason.value)
        )

    async def revoke_all_of(self, user_ids: list[str], reason: RevocationReason) -> None:
        """Revoke the users' live tokens; those revoked already keep their reason (a rotated one
        stays a reuse if it comes back)."""
        await self.session.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.user_id.in_(user_ids), refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now(), revoked_reason=reason.value)
        )


class SqlAlchemyCalendarFeedRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def replace(self, place_id: str, user_id: str, token_hash: str) -> None:
        """The place's feed link is this one now; the one before stops working."""
        statement = insert(calendar_feeds).values(place_id=place_id, user_id=user_id, token_hash=token_hash)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[calendar_feeds.c.place_id],
                set_={"user_id": user_id, "token_hash": token_hash, "created_at": sa.func.now()},
            )
        )

    async def remove(self, place_id: str) -> bool:
        deleted = await self.session.execute(
            sa.delete(calendar_feeds).where(calendar_feeds.c.place_id == place_id).returning(calendar_feeds.c.place_id)
        )
        return deleted.first() is not None

    async def user_of(self, place_id: str, token_hash: str) -> str | None:
        """The user a place's feed link reads on behalf of, if `token_hash` is that link's."""
        query = sa.select(calendar_feeds.c.user_id).where(
            calendar_feeds.c.token_hash == token_hash, calendar_feeds.c.place_id == place_id
        )
        found = (await self.session.execute(query)).scalar_one_or_none()
        return None if found is None else str(found)


class SqlAlchemyContactShareRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def mark(self, user_ids: list[str], with_email: bool, first_attempt_after: timedelta) -> None:
        """Notifications must learn these users' current contact details; a change not confirmed
        yet is replaced by this one (and keeps its e-mail, if it carried it)."""
        if not user_ids:
            return
        statement = insert(contact_shares).values(
            [
                {
                    "user_id": user_id,
                    "share_id": str(uuid.uuid4()),
                    "with_email": with_email,
                    "next_attempt_at": sa.func.now() + first_attempt_after,
                }
                for user_id in user_ids
            ]
        )
        excluded = statement.excluded
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[contact_shares.c.user_id],
                set_={
                    "share_id": excluded.share_id,
                    "with_email": contact_shares.c.with_email | excluded.with_email,
                    "attempts": 0,
                    "next_attempt_at": excluded.next_attempt_at,
                },
            )
        )

    async def of(self, user_id: str) -> ContactShare | None:
        query = sa.select(contact_shares).where(contact_shares.c.user_id == user_id)
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else _to_share(row)

    async def claim_due(self, limit: int, backoff_s: float, max_backoff_s: float) -> list[ContactShare]:
        """Up to `limit` shares whose next attempt is due, each pushed back (doubling per attempt)
        so that another gateway replica leaves them alone while this one tries."""
        due = (
            sa.select(contact_shares.c.user_id)
            .where(contact_shares.c.next_attempt_at <= sa.func.now())
            .order_by(contact_shares.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        delay_s = sa.func.least(backoff_s * sa.func.power(2, contact_shares.c.attempts), max_backoff_s)
        claimed = await self.session.execute(
            sa.update(contact_shares)
            .where(contact_shares.c.user_id.in_(due))
            .values(
                attempts=contact_shares.c.attempts + 1,
                next_attempt_at=sa.func.now() + delay_s * sa.text("interval '1 second'"),
            )
            .returning(*contact_shares.c)
        )
        return [_to_share(row) for row in claimed]

    async def confirmed(self, user_id: str, share_id: str) -> None:
        """Notifications has this change; a newer one stays until it is confirmed too."""
        await self.session.execute(
            sa.delete(contact_shares).where(contact_shares.c.user_id == user_id, contact_shares.c.share_id == share_id)
        )


def _to_share(row) -> ContactShare:
    return ContactShare(
        user_id=str(row.user_id), share_id=str(row.share_id), with_email=row.with_email, attempts=row.attempts
    )
