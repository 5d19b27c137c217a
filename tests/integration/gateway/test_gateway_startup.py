"""What the gateway does once, at start, so that its first requests do not pay for it."""

from __future__ import annotations

from gateway_it_support import settings_with_peers_down

from gateway.bootstrap import start
from kit.timezones import iana_names


async def test_the_gateway_reads_the_zone_names_before_its_first_request(settings_for):
    """`PATCH /v1/users/me` checks a time zone against the zone database's names, which are walked
    once per process (50-90 ms): at start, not in a user's request."""
    iana_names.cache_clear()
    # No agent to create: its time zone would read the names too.
    settings = settings_with_peers_down(settings_for, bootstrap_agent_password="")
    running = await start(settings)
    try:
        assert iana_names.cache_info().currsize == 1
    finally:
        await running.stop()
