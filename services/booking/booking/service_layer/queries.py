"""What a booking list asks for: the repository turns it into one keyset query."""

from __future__ import annotations

from dataclasses import dataclass

from booking.domain.model import Status, TimeRange


@dataclass
class ListQuery:
    client_id: str = ""
    host_id: str = ""
    place_id: str = ""
    statuses: tuple[Status, ...] = ()
    overlapping: TimeRange | None = None
    order_field: str = "first_start"
    descending: bool = False
    page_size: int = 50
    after: tuple | None = None  # (sort value, id) of the last row of the previous page
