"""Webhooks: a JSON POST signed with HMAC-SHA256 of the exact body bytes, hex, in the header
X-Reserva-Signature ("sha256=<hex>"). Receivers verify with `verify_signature`. 4xx answers other
than 408/429 are permanent; timeouts, connection errors and 5xx are retried by the sender with
exponential back-off and jitter."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from notifications.domain.model import DeliveryResult, Notification

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
    def __init__(self, timeout_s: float = 5.0):
        self.client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def send(self, note: Notification, secret: str) -> DeliveryResult:
        if not secret:
            return DeliveryResult(False, "webhook_secret_missing", permanent=True)
        body = webhook_body(note)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            "X-Reserva-Notification-Id": note.id,
        }
        try:
            response = await self.client.post(note.address, content=body, headers=headers)
        except httpx.TimeoutException:
            return DeliveryResult(False, "webhook_timeout")
        except httpx.HTTPError:
            return DeliveryResult(False, "webhook_unreachable")
        if response.status_code < 300:
            return DeliveryResult(True)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            return DeliveryResult(False, f"webhook_rejected_{response.status_code}", permanent=True)
        return DeliveryResult(False, f"webhook_http_{response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()
