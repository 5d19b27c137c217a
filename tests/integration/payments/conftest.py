"""In-process payments servers on the test database, with a clock the tests can move forward."""

from __future__ import annotations

import grpc
import pytest
from payments_helpers import PATIENT_PROVIDER_TIMEOUT_S, Client, MovableClock, settings


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


@pytest.fixture(scope="module")
async def patient_payments_server(settings_for, clock):
    """A server of the module's own with long provider, lock and statement timeouts, for tests that
    hold a row lock on purpose or storm one payment: on a loaded machine the shared server's 2 s
    provider timeout could turn a call that merely waited into UNAVAILABLE."""
    from payments.bootstrap import start

    patient = settings(
        settings_for, provider_timeout_s=PATIENT_PROVIDER_TIMEOUT_S, lock_timeout_ms=20_000, statement_timeout_ms=30_000
    )
    running = await start(patient, clock=clock)
    yield running
    await running.stop(0)


@pytest.fixture(scope="module")
async def patient_payments(patient_payments_server):
    async with grpc.aio.insecure_channel(patient_payments_server.address) as channel:
        yield Client(channel)
