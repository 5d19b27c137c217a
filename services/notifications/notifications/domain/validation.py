"""Checks of user-supplied contact data and settings, raising the service's INVALID_ARGUMENT errors."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from notifications.domain import errors
from notifications.domain.model import E164, LOCALE, zone_of

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# What str.splitlines() takes for a line break; an e-mail header holding one is refused (ValueError).
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def public_address(address: str) -> bool:
    """An IP address on the public internet: not loopback, private, link-local (cloud metadata
    at 169.254.169.254), shared, reserved or multicast, nor an IPv4 one of those mapped into IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") aside
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_global and not ip.is_multicast


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


def checked_webhook_url(value: str, private_targets: bool = False) -> str:
    """HTTPS to a public host. A user's URL must not make the service call into its own network
    (the cluster's services, the cloud's metadata endpoint): a host written as a private, loopback
    or link-local address, or a loopback name, is refused here, and a name that resolves to one is
    refused when the webhook is sent (adapters/webhook.py). `private_targets` (local development and
    tests only) allows them, and plain HTTP to a loopback host."""
    if not value:
        return ""
    if len(value) > 2048:
        raise errors.InvalidWebhookUrl("webhook_url must be at most 2048 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # an unbalanced "[" or "]" in the host, a bad port
        raise errors.InvalidWebhookUrl("webhook_url must be an absolute https URL") from None
    if not host or parts.scheme not in ("https", "http"):
        raise errors.InvalidWebhookUrl("webhook_url must be an absolute https URL")
    if not private_targets and _private_host(host):
        raise errors.InvalidWebhookUrl(
            "webhook_url must point to a public host, not a private, loopback or link-local address"
        )
    if parts.scheme == "http" and not (private_targets and host in LOOPBACK_HOSTS):
        raise errors.InvalidWebhookUrl("webhook_url must use https")
    return value


def _private_host(host: str) -> bool:
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False  # a name: judged by what it resolves to, when the webhook is sent
    return not public_address(name)


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


def one_line(value: str) -> bool:
    """No line break in it: it can be an e-mail subject."""
    return LINE_BREAKS.isdisjoint(value)
