"""Connections the database dropped while they sat idle in a service's pool (a failover, a restart,
an operator's `./reserva locks release`, an idle-session timeout) cost no request: the next calls
are answered as if nothing had happened, on real PostgreSQL through real gRPC."""

import asyncio
import sys
from pathlib import Path

import asyncpg
import grpc

sys.path.insert(0, str(Path(__file__).parents[1] / "availability"))

from availability_helpers import create_place, host  # noqa: E402

from availability.bootstrap import start  # noqa: E402
from availability.config import AvailabilitySettings  # noqa: E402
from kit.provision import admin_dsn  # noqa: E402
from reserva.availability.v1 import availability_pb2 as pb  # noqa: E402
from reserva.availability.v1 import availability_pb2_grpc  # noqa: E402

NAME = "availability-dropped-connections"  # its own application_name: only its backends are ended
POOL = 4


async def _backends(admin: asyncpg.Connection) -> list[int]:
    return [
        r["pid"]
        for r in await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", NAME
        )
    ]


async def test_idle_pooled_connections_the_database_ended_cost_no_request(settings_for, infra, database):
    settings = settings_for(
        "availability",
        AvailabilitySettings,
        service_name=NAME,
        db_pool_size=POOL,
        db_max_overflow=0,
        sweeper_enabled=False,
        outbox_relay_enabled=False,
        ops_snapshot_interval_s=0,  # its backlog reading would open a new backend of the same name
    )
    running = await start(settings)
    admin = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = availability_pb2_grpc.AvailabilityServiceStub(channel)
            owner = host()
            place = await create_place(stub, owner)
            get = pb.GetPlaceRequest(id=place.id)
            # Every pooled connection opened at once, then idle.
            await asyncio.gather(*(create_place(stub, owner) for _ in range(POOL * 2)))
            pids = await _backends(admin)
            assert len(pids) == POOL

            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
            for _ in range(1000):
                if not await _backends(admin):
                    break
                await asyncio.sleep(0.02)
            assert await _backends(admin) == []
            # They sit idle a moment, as dropped connections do in a pool: the service's event loop
            # reads each closed socket (the server is gone from pg_stat_activity a little before its
            # close reaches the client under load).
            await asyncio.sleep(0.5)

            # More calls than the pool had connections, writes and reads: none may fail.
            for _ in range(POOL + 1):
                assert (await create_place(stub, owner)).id
                assert (await stub.GetPlace(get, metadata=tuple(owner.to_metadata()))).id == place.id
            assert len(await _backends(admin)) >= 1
    finally:
        await admin.close()
        await running.stop(0)
