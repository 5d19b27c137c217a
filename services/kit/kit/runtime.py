"""What every service's composition root builds the same way: engine, session factory, lock probe,
Redis, outbox and its relay. Services add their repositories, clients and servicers on top."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kit.cache import make_redis
from kit.config import ServiceSettings
from kit.db import make_engine, make_lock_probe, make_session_factory
from kit.lock_probe import LockProbe
from kit.ops_snapshot import OpsSnapshotPublisher
from kit.outbox import Outbox, OutboxRelay
from kit.telemetry import configure_telemetry, setup_logging


@dataclass
class Runtime:
    settings: ServiceSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    probe: LockProbe
    redis: aioredis.Redis
    outbox: Outbox | None

    def relay(self) -> OutboxRelay:
        assert self.outbox is not None
        return OutboxRelay(self.outbox, self.session_factory, self.redis, self.settings.redis_namespace, self.probe)

    def ops_publisher(self) -> OpsSnapshotPublisher:
        """The worker that publishes this process's operations snapshot for the operator dashboard."""
        return OpsSnapshotPublisher(
            self.settings.service_name,
            self.settings.redis_namespace,
            self.redis,
            self.probe,
            self.settings.ops_snapshot_interval_s,
            self.relay().measure_backlog if self.outbox is not None else None,
        )

    async def close(self) -> None:
        await self.engine.dispose()
        await self.redis.aclose()


def build_runtime(settings: ServiceSettings, outbox_table: Table | None = None, configure_logging=False) -> Runtime:
    if configure_logging:
        setup_logging(settings.log_level, settings.log_json)
    configure_telemetry(settings)
    engine = make_engine(settings)
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        probe=make_lock_probe(settings),
        redis=make_redis(settings.redis_url, settings.redis_timeout_s),
        outbox=Outbox(outbox_table, settings.service_name) if outbox_table is not None else None,
    )
