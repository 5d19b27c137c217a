"""Errors of the notifications service, each with the reason clients branch on."""

from kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


class InvalidEmail(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_EMAIL")


class InvalidPhone(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_PHONE")


class InvalidWebhookUrl(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_WEBHOOK_URL")


class InvalidTimeZone(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_TIME_ZONE")


class InvalidQuietHours(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_QUIET_HOURS")


class InvalidUpdateMask(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_UPDATE_MASK")


class InvalidPageSize(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_PAGE_SIZE")


class InvalidPageToken(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_PAGE_TOKEN")


class AnnouncementNotFound(NotFound):
    def __init__(self, message: str = "announcement not found") -> None:
        super().__init__(message, reason="ANNOUNCEMENT_NOT_FOUND")


class DeadLetterNotFound(NotFound):
    def __init__(self, message: str = "dead letter not found") -> None:
        super().__init__(message, reason="DEAD_LETTER_NOT_FOUND")


class NotOperator(PermissionDenied):
    def __init__(self, message: str = "only operators (agents) may do this") -> None:
        super().__init__(message, reason="NOT_OPERATOR")


class NotOwnNotifications(PermissionDenied):
    def __init__(self, message: str = "these are another user's notifications or preferences") -> None:
        super().__init__(message, reason="NOT_OWN_NOTIFICATIONS")


class DeadLetterAlreadyReplayed(FailedPrecondition):
    def __init__(self, message: str = "the dead letter was already replayed") -> None:
        super().__init__(message, reason="DEAD_LETTER_ALREADY_REPLAYED")


class StalePreferences(Conflict):
    def __init__(self, message: str = "the preferences changed since they were read (stale etag)") -> None:
        super().__init__(message, reason="CONCURRENT_MODIFICATION")


class EventRejected(Exception):
    """An event that can never be processed as it is: dead-lettered at once, not retried.
    `code` is a fixed machine-readable word; the message names no personal data."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class InvalidLocale(InvalidArgument):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="INVALID_LOCALE")
