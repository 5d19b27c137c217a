"""iCalendar (RFC 5545) export with the `icalendar` library."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar


def render(place, entries, now: datetime | None = None) -> str:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Reserva//Availability//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", place.title)
    calendar.add("x-wr-timezone", place.time_zone)
    stamp = now or datetime.now(UTC)
    counts: dict[str, int] = {}
    for entry in entries:
        n = counts[entry.hold_id] = counts.get(entry.hold_id, 0) + 1
        event = icalendar.Event()
        event.add("uid", f"{entry.hold_id}-{n}@reserva")
        event.add("dtstamp", stamp)
        event.add("dtstart", entry.range.start.astimezone(UTC))
        event.add("dtend", entry.range.end.astimezone(UTC))
        if entry.kind == "block":
            summary = f"Blocked{': ' + entry.reason if entry.reason else ''}"
        else:
            summary = "Booked" if entry.kind == "confirmed" else "On hold"
        event.add("summary", f"{summary} ({entry.units} unit{'s' if entry.units != 1 else ''})")
        event.add("status", "CONFIRMED" if entry.kind != "hold" else "TENTATIVE")
        calendar.add_component(event)
    return calendar.to_ical().decode()
