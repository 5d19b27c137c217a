"""Zone names from callers: only the zone database's own names give a zone."""

from zoneinfo import ZoneInfo

import pytest

from kit.timezones import iana_zone


@pytest.mark.parametrize("name", ["Europe/Paris", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_iana_names_give_their_zone(name):
    assert iana_zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    [
        "Europe",  # a folder of the database: ZoneInfo raises IsADirectoryError
        "x" * 5000,  # too long for a file name: OSError
        "Europe/Paris\x00",  # ValueError
        "/etc/passwd",
        "../zoneinfo/UTC",
        "",
        "utc",
        " UTC",
        "Mars/Olympus",
    ],
)
def test_anything_else_gives_none_instead_of_raising(name):
    assert iana_zone(name) is None
