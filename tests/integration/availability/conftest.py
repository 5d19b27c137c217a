"""In-process availability server on the test run's real PostgreSQL and Redis (helpers to call it
live in availability_helpers.py, a unique module name, since every test folder has a conftest)."""

from __future__ import annotations

import grpc
import pytest

from availability.bootstrap import start
from availability.config import AvailabilitySettings
from reserva.availability.v1 import availability_pb2_grpc


@pytest.fixture(scope="session")
async def availability_server(settings_for):
    # A small pool: the shared PostgreSQL serves every engineer's test run at once.
    settings = settings_for(
        "availability", AvailabilitySettings, sweeper_interval_s=0.2, db_pool_size=1, db_max_overflow=7
    )
    running = await start(settings)
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def channel(availability_server):
    async with grpc.aio.insecure_channel(availability_server.address) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel):
    return availability_pb2_grpc.AvailabilityServiceStub(channel)
