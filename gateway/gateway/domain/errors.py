"""Identity errors, each with a stable reason."""

from __future__ import annotations

from kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated


class EmailAlreadyRegistered(AlreadyExists):
    def __init__(self, message: str = "a user with this e-mail already exists") -> None:
        super().__init__(message, reason="EMAIL_ALREADY_REGISTERED")


class UserNotFound(NotFound):
    def __init__(self, message: str = "user not found") -> None:
        super().__init__(message, reason="USER_NOT_FOUND")


class InvalidCredentials(Unauthenticated):
    def __init__(self, message: str = "wrong e-mail or password") -> None:
        super().__init__(message, reason="INVALID_CREDENTIALS")


class InvalidRefreshToken(Unauthenticated):
    def __init__(self, message: str = "the refresh token is invalid, expired or revoked") -> None:
        super().__init__(message, reason="INVALID_REFRESH_TOKEN")


class InvalidFeedLink(Unauthenticated):
    def __init__(
        self, message: str = "this calendar feed link is not valid: it was replaced, removed, or mistyped"
    ) -> None:
        super().__init__(message, reason="INVALID_FEED_LINK")


class InvalidUserField(InvalidArgument):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, reason=reason)


class RoleNotAllowed(PermissionDenied):
    def __init__(self, message: str, reason: str = "ROLE_NOT_ALLOWED") -> None:
        super().__init__(message, reason=reason)
