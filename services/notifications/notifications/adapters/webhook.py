"""Webhooks: a JSON POST signed with HMAC-SHA256 of the exact body bytes, hex, in the header
X-Reserva-Signature ("sha256=<hex>"). Receivers verify with `verify_signature`. 4xx answers other
than 408/429 are permanent; timeouts, connection errors and 5xx are retried by the sender with
exponential back-off and jitter.

A webhook URL is a user's: the host is resolved here, every address it resolves to must be public
(domain.validation.public_address) unless private targets are allowed (development, tests), and
the request goes to the address that was checked, with the URL's host name in the Host header and
for TLS (SNI and the certificate's name): a name that resolves to a public address when checked and
to an internal one a moment later (DNS rebinding) still cannot reach inside."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import ssl
from collections import OrderedDict

import httpx

from notifications.domain.model import DeliveryResult, Notification
from notifications.domain.validation import public_address

SIGNATURE_HEADER = "X-Reserva-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header or "")


def webhook_body(note: Notification) -> bytes:
    return json.dumps(
        {
            "notification_id": note.id,
            "event_id": note.event_id,
            "event_type": note.event_type,
            "user_id": note.user_id,
            "subject": note.subject,
            "body": note.body,
            "create_time": note.created_at.isoformat(),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


class HttpxWebhookSender:
    """Keeps connections per host name (one client each, the least recently used idle ones closed
    past `max_hosts`): a connection opened for one name is never reused for another name at the
    same address, whose TLS name and certificate it would carry."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        private_targets: bool = False,
        verify: ssl.SSLContext | bool = True,
        max_hosts: int = 64,
    ):
        """`verify`: the TLS trust (tests pass a context that trusts their own authority)."""
        self.private_targets, self.timeout_s, self.verify = private_targets, timeout_s, verify
        self.max_hosts = max_hosts
        self._clients: OrderedDict[tuple[str, str, int], httpx.AsyncClient] = OrderedDict()
        self._in_use: dict[tuple[str, str, int], int] = {}
        self._closing: set[asyncio.Task] = set()

    def _client(self, key: tuple[str, str, int]) -> httpx.AsyncClient:
        client = self._clients.pop(key, None)
        if client is None:
            # No proxy from the environment: it would connect by name, past the address check.
            client = httpx.AsyncClient(
                timeout=self.timeout_s,
                follow_redirects=False,
                verify=self.verify,
                trust_env=False,
                limits=httpx.Limits(max_connections=8, max_keepalive_connections=2, keepalive_expiry=30),
            )
        self._clients[key] = client  # the most recently used last
        idle = [k for k in self._clients if not self._in_use.get(k) and k != key]
        for old in idle[: max(0, len(self._clients) - self.max_hosts)]:
            closing = asyncio.get_running_loop().create_task(self._clients.pop(old).aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return client

    async def _checked_addresses(self, url: httpx.URL) -> list[str] | DeliveryResult:
        """The addresses to connect to, in the resolver's order, or why not."""
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            lookup = asyncio.get_running_loop().getaddrinfo(_ascii_host(url), port, type=socket.SOCK_STREAM)
            found = await asyncio.wait_for(lookup, self.timeout_s)
        except TimeoutError:
            return DeliveryResult(False, "webhook_timeout")
        except (OSError, UnicodeError):
            return DeliveryResult(False, "webhook_unreachable")  # no such name (yet): retried
        addresses = [info[4][0] for info in found]
        if not addresses:
            return DeliveryResult(False, "webhook_unreachable")
        if not self.private_targets and not all(public_address(a) for a in addresses):
            return DeliveryResult(False, "webhook_target_forbidden", permanent=True)
        return list(dict.fromkeys(addresses))

    async def send(self, note: Notification, secret: str) -> DeliveryResult:
        if not secret:
            return DeliveryResult(False, "webhook_secret_missing", permanent=True)
        try:
            url = httpx.URL(note.address)
        except httpx.InvalidURL:
            return DeliveryResult(False, "webhook_url_invalid", permanent=True)
        if url.scheme not in ("http", "https") or not url.host:
            return DeliveryResult(False, "webhook_url_invalid", permanent=True)
        addresses = await self._checked_addresses(url)
        if isinstance(addresses, DeliveryResult):
            return addresses
        body = webhook_body(note)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            "X-Reserva-Notification-Id": note.id,
        }
        extensions = {"sni_hostname": _ascii_host(url)} if url.scheme == "https" else {}
        key = (url.scheme, _ascii_host(url), url.port or 0)
        self._in_use[key] = self._in_use.get(key, 0) + 1
        try:
            client = self._client(key)
            for address in addresses:  # the next one only when this one refuses the connection
                try:
                    response = await client.post(
                        url.copy_with(host=address), content=body, headers=headers, extensions=extensions
                    )
                    break
                except httpx.ConnectError:
                    continue
                except httpx.TimeoutException:
                    return DeliveryResult(False, "webhook_timeout")
                except httpx.HTTPError:
                    return DeliveryResult(False, "webhook_unreachable")
            else:
                return DeliveryResult(False, "webhook_unreachable")
        finally:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]
        if response.status_code < 300:
            return DeliveryResult(True)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            return DeliveryResult(False, f"webhook_rejected_{response.status_code}", permanent=True)
        return DeliveryResult(False, f"webhook_http_{response.status_code}")

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        await asyncio.gather(*(client.aclose() for client in clients), *self._closing)


def _ascii_host(url: httpx.URL) -> str:
    """The host as it goes on the wire (an internationalized name in its IDNA form)."""
    return url.raw_host.decode("ascii")
