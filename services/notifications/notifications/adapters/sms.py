"""SMS through a provider adapter. The sandbox provider keeps what it "sent" in memory; two
reserved numbers fail, for tests and demos: one refused for good, one temporarily."""

from __future__ import annotations

from dataclasses import dataclass, field

from notifications.domain.model import DeliveryResult, Notification

SANDBOX_REJECTED_NUMBER = "+15005550001"
SANDBOX_UNAVAILABLE_NUMBER = "+15005550002"


@dataclass(frozen=True)
class SentSms:
    to: str
    text: str
    notification_id: str


@dataclass
class SandboxSmsProvider:
    sent: list[SentSms] = field(default_factory=list)

    async def send(self, note: Notification, secret: str = "") -> DeliveryResult:
        if note.address == SANDBOX_REJECTED_NUMBER:
            return DeliveryResult(False, "sms_rejected", permanent=True)
        if note.address == SANDBOX_UNAVAILABLE_NUMBER:
            return DeliveryResult(False, "sms_provider_unavailable")
        self.sent.append(SentSms(note.address, note.body[:1600], note.id))
        return DeliveryResult(True)
