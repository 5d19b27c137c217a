"""The unit of work of the notifications service: one short transaction with its repositories."""

from __future__ import annotations

from kit.db import SqlAlchemyUnitOfWork
from notifications.adapters.repository import (
    SqlAlchemyAnnouncementRepository,
    SqlAlchemyDeadLetterRepository,
    SqlAlchemyNotificationRepository,
    SqlAlchemyPreferencesRepository,
    SqlAlchemyProcessedEventRepository,
    SqlAlchemyReminderRepository,
    SqlAlchemyRequestLog,
)


class NotificationsUnitOfWork(SqlAlchemyUnitOfWork):
    def _open(self) -> None:
        self.preferences = SqlAlchemyPreferencesRepository(self.session)
        self.notifications = SqlAlchemyNotificationRepository(self.session)
        self.processed_events = SqlAlchemyProcessedEventRepository(self.session)
        self.reminders = SqlAlchemyReminderRepository(self.session)
        self.announcements = SqlAlchemyAnnouncementRepository(self.session)
        self.dead_letters = SqlAlchemyDeadLetterRepository(self.session)
        self.request_log = SqlAlchemyRequestLog(self.session)
