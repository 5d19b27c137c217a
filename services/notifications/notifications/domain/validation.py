"""Checks of user-supplied contact data and settings, raising the service's INVALID_ARGUMENT errors."""

from __future__ import annotations

from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from notifications.domain import errors
from notifications.domain.model import E164, LOCALE, zone_of

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def normalized_email(value: str) -> str:
    if not value:
        return ""
    if len(value) > 254:
        raise errors.InvalidEmail("email must be at most 254 characters")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise errors.InvalidEmail(f"email is not a valid address: {error}") from error


def checked_phone(value: str) -> str:
    if value and not E164.match(value):
        raise errors.InvalidPhone("phone must be in E.164 form, for example +33612345678")
    return value


def checked_webhook_url(value: str) -> str:
    """HTTPS only; plain HTTP is accepted for loopback hosts (local development and tests)."""
    if not value:
        return ""
    if len(value) > 2048:
        raise errors.InvalidWebhookUrl("webhook_url must be at most 2048 characters")
    parts = urlsplit(value)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise errors.InvalidWebhookUrl("webhook_url must be an absolute https URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise errors.InvalidWebhookUrl("webhook_url must use https")
    return value


def checked_secret(value: str) -> str:
    if value and not 16 <= len(value) <= 128:
        raise errors.InvalidWebhookUrl("webhook_secret must be 16-128 characters")
    return value


def checked_locale(value: str) -> str:
    value = value or "en"
    if len(value) > 35 or not LOCALE.match(value):
        raise errors.InvalidLocale("locale must be a BCP 47 tag such as fr-FR")
    return value


def checked_time_zone(value: str) -> str:
    value = value or "UTC"
    zone_of(value)
    return value
