"""SQLAlchemy Core repositories: rows <-> domain objects. Every query names the index it relies on,
because each index a statement touches is one more lock in the transaction's budget."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime, any_, func, insert, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.model import (
    Announcement,
    AnnouncementState,
    Channel,
    ChannelSwitch,
    DeadLetter,
    DeadLetterState,
    Notification,
    Preferences,
    QuietHours,
    Reminder,
    Status,
)


def _keyset(after: tuple[datetime, str]):
    return tuple_(literal(after[0], DateTime(timezone=True)), literal(after[1], UUID(as_uuid=False)))


DUE_STATUSES = (Status.QUEUED.value, Status.DEFERRED.value, Status.SENDING.value)


def _prefs_from_row(row) -> Preferences:
    quiet = QuietHours(row.quiet_start, row.quiet_end) if row.quiet_start is not None else None
    return Preferences(
        user_id=str(row.user_id),
        email=row.email,
        phone=row.phone,
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
        locale=row.locale,
        time_zone=row.time_zone,
        quiet_hours=quiet,
        switches=[ChannelSwitch(e, Channel(c), bool(on)) for e, c, on in row.channel_preferences],
        roles=frozenset(row.roles),
        version=row.version,
        update_time=row.update_time,
    )


class SqlAlchemyPreferencesRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def get(self, user_id: str, for_update: bool = False) -> Preferences | None:
        query = select(orm.preferences).where(orm.preferences.c.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return _prefs_from_row(row) if row else None

    async def get_many(self, user_ids: list[str]) -> dict[str, Preferences]:
        if not user_ids:
            return {}
        rows = await self.session.execute(select(orm.preferences).where(orm.preferences.c.user_id.in_(user_ids)))
        return {str(r.user_id): _prefs_from_row(r) for r in rows}

    async def with_role(self, role: str, limit: int) -> list[Preferences]:
        rows = await self.session.execute(
            select(orm.preferences)
            .where(literal(role) == any_(orm.preferences.c.roles))
            .order_by(orm.preferences.c.user_id)
            .limit(limit)
        )
        return [_prefs_from_row(r) for r in rows]

    async def insert_blank(self, user_id: str) -> None:
        await self.session.execute(
            pg_insert(orm.preferences).values(user_id=user_id).on_conflict_do_nothing(index_elements=["user_id"])
        )

    async def save(self, prefs: Preferences) -> None:
        await self.session.execute(
            update(orm.preferences)
            .where(orm.preferences.c.user_id == prefs.user_id)
            .values(
                email=prefs.email,
                phone=prefs.phone,
                webhook_url=prefs.webhook_url,
                webhook_secret=prefs.webhook_secret,
                locale=prefs.locale,
                time_zone=prefs.time_zone,
                quiet_start=prefs.quiet_hours.start if prefs.quiet_hours else None,
                quiet_end=prefs.quiet_hours.end if prefs.quiet_hours else None,
                channel_preferences=[[s.event_type, s.channel.value, s.enabled] for s in prefs.switches],
                roles=sorted(prefs.roles),
                version=prefs.version,
                update_time=prefs.update_time,
            )
        )

    async def page_matching(self, roles: list[str], user_ids: list[str], after: str | None, limit: int):
        """Recipients of an announcement in user_id order (the primary key), after the cursor."""
        query = select(orm.preferences).order_by(orm.preferences.c.user_id).limit(limit)
        query = query.where(*self._audience(roles, user_ids))
        if after:
            query = query.where(orm.preferences.c.user_id > after)
        return [_prefs_from_row(r) for r in await self.session.execute(query)]

    async def count_matching(self, roles: list[str], user_ids: list[str]) -> int:
        query = select(func.count()).select_from(orm.preferences).where(*self._audience(roles, user_ids))
        return (await self.session.execute(query)).scalar_one()

    @staticmethod
    def _audience(roles: list[str], user_ids: list[str]) -> list:
        conditions = []
        if roles:
            conditions.append(orm.preferences.c.roles.overlap(roles))
        if user_ids:
            conditions.append(orm.preferences.c.user_id.in_(user_ids))
        return conditions


def _notification_row(n: Notification) -> dict:
    return {
        "id": n.id,
        "user_id": n.user_id,
        "event_id": n.event_id,
        "event_type": n.event_type,
        "channel": n.channel.value,
        "address": n.address,
        "subject": n.subject,
        "body": n.body,
        "html": n.html,
        "status": n.status.value,
        "attempts": n.attempts,
        "failure_reason": n.failure_reason,
        "read": n.read,
        "created_at": n.created_at,
        "send_after": n.send_after,
        "sent_at": n.sent_at,
    }


def _notification_from_row(r) -> Notification:
    return Notification(
        id=str(r.id),
        user_id=str(r.user_id),
        event_id=r.event_id,
        event_type=r.event_type,
        channel=Channel(r.channel),
        address=r.address,
        subject=r.subject,
        body=r.body,
        html=r.html,
        status=Status(r.status),
        created_at=r.created_at,
        send_after=r.send_after,
        sent_at=r.sent_at,
        attempts=r.attempts,
        failure_reason=r.failure_reason,
        read=r.read,
    )


class SqlAlchemyNotificationRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add_all(self, items: list[Notification]) -> None:
        if items:
            await self.session.execute(insert(orm.notifications), [_notification_row(n) for n in items])

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[Notification]:
        """Due rows (queued, deferred, or sending with an expired lease) become 'sending' until the
        lease ends; SKIP LOCKED lets several senders share the work without waiting on each other."""
        t = orm.notifications
        due = (
            select(t.c.id)
            .where(t.c.status.in_(DUE_STATUSES), t.c.send_after <= now)
            .order_by(t.c.send_after)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            update(t).where(t.c.id.in_(due)).values(status=Status.SENDING.value, send_after=now + lease).returning(*t.c)
        )
        return [_notification_from_row(r) for r in rows]

    async def start_send(self, note_id: str, lease_end: datetime, now: datetime, lease: timedelta) -> datetime | None:
        """Renews a claim's lease as its send starts and returns the new lease end, the claim's token
        from then on; None if the lease ran out first (the row may be another sender's by now)."""
        t = orm.notifications
        result = await self.session.execute(
            update(t)
            .where(
                t.c.id == note_id,
                t.c.status == Status.SENDING.value,
                t.c.send_after == lease_end,
                t.c.send_after > now,
            )
            .values(send_after=now + lease)
            .returning(t.c.send_after)
        )
        return result.scalar_one_or_none()

    async def record_attempt(
        self, note_id: str, lease_end: datetime, status: Status, attempts: int, reason: str, send_after, sent_at
    ) -> bool:
        """Stores the outcome of an attempt, unless another sender took the row over meanwhile: each
        claim (and renewal) moves the lease end, so a lost claim's `lease_end` no longer matches."""
        t = orm.notifications
        result = await self.session.execute(
            update(t)
            .where(t.c.id == note_id, t.c.status == Status.SENDING.value, t.c.send_after == lease_end)
            .values(
                status=status.value, attempts=attempts, failure_reason=reason, send_after=send_after, sent_at=sent_at
            )
        )
        return result.rowcount == 1

    async def page(self, user_id: str, unread_only: bool, after: tuple[datetime, str] | None, limit: int):
        t = orm.notifications
        query = select(t).where(t.c.user_id == user_id)  # ix_notifications_user_history
        if unread_only:
            query = query.where(t.c.read.is_(False))
        if after is not None:
            query = query.where(tuple_(t.c.created_at, t.c.id) < _keyset(after))
        query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        return [_notification_from_row(r) for r in await self.session.execute(query)]

    async def unread_count(self, user_id: str) -> int:
        t = orm.notifications
        query = select(func.count()).select_from(t).where(t.c.user_id == user_id, t.c.read.is_(False))
        return (await self.session.execute(query)).scalar_one()

    async def mark_read(self, user_id: str, ids: list[str]) -> int:
        t = orm.notifications
        query = update(t).where(t.c.user_id == user_id, t.c.read.is_(False))
        if ids:
            query = query.where(t.c.id.in_(ids))
        return (await self.session.execute(query.values(read=True))).rowcount

    async def by_event(self, event_id: str) -> list[Notification]:
        rows = await self.session.execute(select(orm.notifications).where(orm.notifications.c.event_id == event_id))
        return [_notification_from_row(r) for r in rows]


class SqlAlchemyProcessedEventRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def claim(self, event_id: str, event_type: str) -> bool:
        """True the first time an event id is seen; a concurrent twin waits on the row and gets False."""
        result = await self.session.execute(
            pg_insert(orm.processed_events)
            .values(event_id=event_id, event_type=event_type)
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        return result.rowcount == 1


def _reminder_from_row(r) -> Reminder:
    return Reminder(str(r.id), str(r.booking_id), str(r.user_id), r.place_id, r.offset_s, r.start_time, r.due_at)


class SqlAlchemyReminderRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add_all(self, items: list[Reminder], rearm: bool = False) -> None:
        """Idempotent per (booking, user, offset); `rearm` moves existing ones to the new time."""
        if not items:
            return
        rows = [
            {
                "id": r.id,
                "booking_id": r.booking_id,
                "user_id": r.user_id,
                "place_id": r.place_id,
                "offset_s": r.offset_s,
                "start_time": r.start_time,
                "due_at": r.due_at,
            }
            for r in items
        ]
        statement = pg_insert(orm.reminders).values(rows)
        keys = ["booking_id", "user_id", "offset_s"]
        if rearm:
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={
                    "start_time": statement.excluded.start_time,
                    "due_at": statement.excluded.due_at,
                    "status": "pending",
                },
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        await self.session.execute(statement)

    async def lock_booking(self, booking_id: str) -> str | None:
        """Locks the booking's row (creating it) until the transaction ends; returns the event type
        that ended the booking, None while it lives."""
        t = orm.reminder_bookings
        statement = pg_insert(t).values(booking_id=booking_id)
        statement = statement.on_conflict_do_update(
            index_elements=["booking_id"], set_={"booking_id": statement.excluded.booking_id}
        ).returning(t.c.ended_by)
        return (await self.session.execute(statement)).scalar_one()

    async def end_booking(self, booking_id: str, ended_by: str, now: datetime) -> None:
        """Records the booking's end (the first one counts), locking its row like `lock_booking`."""
        t = orm.reminder_bookings
        statement = pg_insert(t).values(booking_id=booking_id, ended_by=ended_by, ended_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=["booking_id"],
            set_={"ended_by": statement.excluded.ended_by, "ended_at": statement.excluded.ended_at},
            where=t.c.ended_by.is_(None),
        )
        await self.session.execute(statement)

    async def cancel_for_booking(self, booking_id: str) -> int:
        t = orm.reminders
        result = await self.session.execute(
            update(t).where(t.c.booking_id == booking_id, t.c.status == "pending").values(status="cancelled")
        )
        return result.rowcount

    async def claim_due(self, now: datetime, limit: int) -> list[Reminder]:
        """Due pending reminders, locked; rows another worker holds are skipped, not waited for."""
        t = orm.reminders
        due = (
            select(t.c.id)
            .where(t.c.status == "pending", t.c.due_at <= now)
            .order_by(t.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await self.session.execute(update(t).where(t.c.id.in_(due)).values(status="fired").returning(*t.c))
        return [_reminder_from_row(r) for r in rows]

    async def for_booking(self, booking_id: str) -> list[tuple[Reminder, str]]:
        rows = await self.session.execute(select(orm.reminders).where(orm.reminders.c.booking_id == booking_id))
        return [(_reminder_from_row(r), r.status) for r in rows]


def _announcement_from_row(r) -> Announcement:
    return Announcement(
        id=str(r.id),
        request_id=r.request_id,
        fingerprint=r.fingerprint,
        subject=r.subject,
        body=r.body,
        roles=list(r.roles),
        user_ids=list(r.user_ids),
        created_by=r.created_by,
        created_at=r.created_at,
        state=AnnouncementState(r.state),
        cursor=str(r.cursor) if r.cursor else None,
        total=r.total,
        sent_count=r.sent_count,
        failed_count=r.failed_count,
        complete_time=r.complete_time,
    )


class SqlAlchemyAnnouncementRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, a: Announcement) -> bool:
        """False if the request id is already taken (the caller then reads the original)."""
        result = await self.session.execute(
            pg_insert(orm.announcements)
            .values(
                id=a.id,
                request_id=a.request_id,
                fingerprint=a.fingerprint,
                subject=a.subject,
                body=a.body,
                roles=a.roles,
                user_ids=a.user_ids,
                created_by=a.created_by,
                created_at=a.created_at,
                state=a.state.value,
            )
            .on_conflict_do_nothing(index_elements=["request_id"])
        )
        return result.rowcount == 1

    async def get(self, announcement_id: str) -> Announcement | None:
        row = (
            await self.session.execute(select(orm.announcements).where(orm.announcements.c.id == announcement_id))
        ).one_or_none()
        return _announcement_from_row(row) if row else None

    async def by_request_id(self, request_id: str) -> Announcement | None:
        t = orm.announcements
        row = (await self.session.execute(select(t).where(t.c.request_id == request_id))).one_or_none()
        return _announcement_from_row(row) if row else None

    async def claim_active(self) -> Announcement | None:
        t = orm.announcements
        row = (
            await self.session.execute(
                select(t)
                .where(t.c.state.in_(("pending", "sending")))
                .order_by(t.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).one_or_none()
        return _announcement_from_row(row) if row else None

    async def save_progress(self, a: Announcement) -> None:
        await self.session.execute(
            update(orm.announcements)
            .where(orm.announcements.c.id == a.id)
            .values(
                state=a.state.value,
                cursor=a.cursor,
                total=a.total,
                sent_count=a.sent_count,
                failed_count=a.failed_count,
                complete_time=a.complete_time,
            )
        )


def _dead_letter_from_row(r) -> DeadLetter:
    return DeadLetter(
        id=str(r.id),
        stream=r.stream,
        consumer_group=r.consumer_group,
        message_id=r.message_id,
        event_id=r.event_id,
        event_type=r.event_type,
        envelope=bytes(r.envelope),
        error=r.error,
        attempts=r.attempts,
        create_time=r.create_time,
        state=DeadLetterState(r.state),
        replay_time=r.replay_time,
    )


class SqlAlchemyDeadLetterRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, d: DeadLetter) -> None:
        """Idempotent per stream message: a second dead-lettering of one message changes nothing."""
        await self.session.execute(
            pg_insert(orm.dead_letters)
            .values(
                id=d.id,
                stream=d.stream,
                consumer_group=d.consumer_group,
                message_id=d.message_id,
                event_id=d.event_id,
                event_type=d.event_type,
                envelope=d.envelope,
                error=d.error[:1000],
                attempts=d.attempts,
                create_time=d.create_time,
            )
            .on_conflict_do_nothing(index_elements=["stream", "message_id"])
        )

    async def get(self, dead_letter_id: str, for_update: bool = False) -> DeadLetter | None:
        query = select(orm.dead_letters).where(orm.dead_letters.c.id == dead_letter_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return _dead_letter_from_row(row) if row else None

    async def page(self, event_type: str, states: list[str], after: tuple[datetime, str] | None, limit: int):
        t = orm.dead_letters
        query = select(t).where(t.c.state.in_(states))
        if event_type:
            query = query.where(t.c.event_type == event_type)
        if after is not None:
            query = query.where(tuple_(t.c.create_time, t.c.id) > _keyset(after))
        query = query.order_by(t.c.create_time, t.c.id).limit(limit)
        return [_dead_letter_from_row(r) for r in await self.session.execute(query)]

    async def save_state(self, d: DeadLetter) -> None:
        await self.session.execute(
            update(orm.dead_letters)
            .where(orm.dead_letters.c.id == d.id)
            .values(state=d.state.value, replay_time=d.replay_time, error=d.error[:1000], attempts=d.attempts)
        )


class SqlAlchemyRequestLog:
    """First answer of each (request id, operation); retries get it back."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def find(self, request_id: str, operation: str) -> tuple[str, bytes] | None:
        t = orm.request_log
        row = (
            await self.session.execute(
                select(t.c.fingerprint, t.c.response).where(t.c.request_id == request_id, t.c.operation == operation)
            )
        ).one_or_none()
        return (row.fingerprint, bytes(row.response)) if row else None

    async def lock(self, request_id: str, operation: str) -> None:
        """Serialises concurrent twins of one request id on a transaction-scoped row-less lock."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"notifications:{operation}:{request_id}"}
        )

    async def add(self, request_id: str, operation: str, fingerprint: str, response: bytes) -> None:
        await self.session.execute(
            insert(orm.request_log).values(
                request_id=request_id, operation=operation, fingerprint=fingerprint, response=response
            )
        )
