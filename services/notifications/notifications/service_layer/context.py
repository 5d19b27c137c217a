"""What the use cases need from the outside world, passed in by the composition root."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from notifications.domain.model import Channel, DeliveryResult, Notification, Preferences, Rendered, RetryPolicy
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork


class Renderer(Protocol):
    def render(self, event_type: str, channel: Channel, prefs: Preferences, context: dict) -> Rendered: ...


class ChannelSender(Protocol):
    async def send(self, note: Notification, secret: str) -> DeliveryResult: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class Services:
    uow: Callable[[], NotificationsUnitOfWork]
    renderer: Renderer
    senders: dict[Channel, ChannelSender] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    reminder_offsets_s: list[int] = field(default_factory=lambda: [86400, 3600])
    webhook_private_targets: bool = False  # see NotificationsSettings
    max_agents: int = 50
    clock: Callable[[], datetime] = utc_now
    new_id: Callable[[], str] = new_uuid
