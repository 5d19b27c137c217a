"""The port to a card processor. The service calls it only outside database transactions, always
with an idempotency key, so that a retried call never charges twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payments.domain.model import ChargeRecord, RefundRecord
from payments.domain.money import Money


class ProviderTimeout(Exception):
    """The processor did not answer in time: the operation may or may not have happened."""


class ProviderDeclined(Exception):
    """The processor refused (card declined, insufficient funds, nothing left to refund, ...)."""

    def __init__(self, code: str, reference: str = "") -> None:
        super().__init__(code)
        self.code, self.reference = code, reference


@dataclass(frozen=True)
class Authorization:
    reference: str
    expire_time: datetime | None


class CardProcessor(Protocol):
    async def authorize(self, *, idempotency_key: str, amount: Money, token: str) -> Authorization:
        """Reserve `amount` on the card. ProviderDeclined on a decline, ProviderTimeout if unanswered."""

    async def capture(self, *, reference: str, amount: Money, idempotency_key: str) -> None:
        """Charge `amount` of an authorization and release the rest."""

    async def void(self, *, reference: str, idempotency_key: str) -> None:
        """Cancel an authorization."""

    async def refund(self, *, reference: str, amount: Money, idempotency_key: str) -> str:
        """Return `amount` of a captured charge; returns the processor's refund id."""

    async def retrieve(self, *, idempotency_key: str) -> ChargeRecord | None:
        """What the processor knows of the charge created with `idempotency_key`; None if it never
        received that request. Used by reconciliation."""

    async def retrieve_refund(self, *, reference: str, idempotency_key: str) -> RefundRecord | None:
        """What the processor knows of the refund of charge `reference` requested with
        `idempotency_key` (our refund id); None if it never received that request. Used by
        reconciliation."""


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook: the event id (for deduplication), its type, and the idempotency key of
    the charge it concerns (our payment id)."""

    event_id: str
    event_type: str
    charge_key: str


class WebhookVerifier(Protocol):
    def verify_and_parse(self, body: bytes, signature: str, now: datetime) -> ProviderEvent:
        """The event if the signature is valid and fresh; InvalidWebhookSignature otherwise."""
