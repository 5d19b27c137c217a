"""In-process payments servers on the test database, with a clock the tests can move forward."""

from __future__ import annotations

import grpc
import pytest
from payments_helpers import Client, MovableClock, settings


@pytest.fixture(scope="session")
def clock():
    return MovableClock()


@pytest.fixture(scope="session")
async def payments_server(settings_for, clock):
    from payments.bootstrap import start

    running = await start(settings(settings_for), clock=clock)
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def payments(payments_server):
    async with grpc.aio.insecure_channel(payments_server.address) as channel:
        yield Client(channel)
