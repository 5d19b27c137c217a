"""Domain events, past tense. The unit of work turns them into outbox messages (protos)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from availability.domain.model import Hold, Place, TimeRange


@dataclass
class PlaceCreated:
    place: Place


@dataclass
class PlaceUpdated:
    place: Place
    paths: list[str]


@dataclass
class HoldCreated:
    hold: Hold


@dataclass
class HoldConfirmed:
    hold: Hold


@dataclass
class HoldReleased:
    hold: Hold


@dataclass
class HoldExpired:
    hold: Hold
    expired_at: datetime


@dataclass
class TimeBlocked:
    block: Hold


@dataclass
class TimeUnblocked:
    block: Hold


@dataclass
class CalendarChanged:
    place_id: str
    cause: str  # OCCUPIED | FREED | SCHEDULE_CHANGED
    ranges: list[TimeRange] = field(default_factory=list)
