"""IANA time zones by name, for every service: a name is looked up in the list of the zone
database's names, read once per process, before ZoneInfo opens it. ZoneInfo takes any string as a
path into the database, so a caller's "Europe" (a folder), a name too long for a file name or one
with a NUL byte raise IsADirectoryError, OSError or ValueError, not ZoneInfoNotFoundError."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, available_timezones


@cache
def iana_names() -> frozenset[str]:
    """Every zone name the database knows (walks it once: 50-90 ms here)."""
    return frozenset(available_timezones())


def iana_zone(name: str) -> ZoneInfo | None:
    """The zone of a known IANA name ("Europe/Paris", "UTC"), else None. ZoneInfo keeps one
    instance per name, so repeated lookups cost a set membership test."""
    return ZoneInfo(name) if name in iana_names() else None
