"""What the gateway does once, at start, so that its first requests do not pay for it."""

from __future__ import annotations

from gateway.bootstrap import start
from gateway.config import GatewaySettings
from kit.timezones import iana_names

DOWN = "127.0.0.1:9"  # nothing listens: no peer is needed to start


async def test_the_gateway_reads_the_zone_names_before_its_first_request(settings_for):
    """`PATCH /v1/users/me` checks a time zone against the zone database's names, which are walked
    once per process (50-90 ms): at start, not in a user's request."""
    iana_names.cache_clear()
    settings = settings_for(
        "gateway",
        GatewaySettings,
        http_port=0,
        availability_addr=DOWN,
        booking_addr=DOWN,
        payments_addr=DOWN,
        notifications_addr=DOWN,
        bootstrap_agent_password="",  # no agent to create, whose time zone would read the names too
    )
    running = await start(settings)
    try:
        assert iana_names.cache_info().currsize == 1
    finally:
        await running.stop()
