"""The gateway's composition root: database (identity schema), Redis, token issuer, rate limiter,
idempotency store and the four peer clients; nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import uvicorn
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.adapters import tokens as token_adapter
from gateway.adapters.contact_details import notifications_contact_sender
from gateway.adapters.idempotency import IdempotencyStore
from gateway.adapters.ops_monitor import PostgresRedisOpsMonitor
from gateway.adapters.passwords import Argon2Passwords
from gateway.adapters.peers import Peers, connect_peers
from gateway.adapters.rate_limit import RateLimiter
from gateway.adapters.revocations import AccessRevocations
from gateway.config import GatewaySettings
from gateway.service_layer.handlers import IdentityDeps, SendContactDetails
from gateway.service_layer.unit_of_work import IdentityUnitOfWork
from kit.cache import Cache
from kit.runtime import Runtime, build_runtime
from kit.timezones import iana_names

log = logging.getLogger("reserva.gateway")
# Registration waits at most this long on notifications; what it does not take is retried later.
CONTACT_SHARE_TIMEOUT_S = 1.0


@dataclass
class Gateway:
    settings: GatewaySettings
    runtime: Runtime
    peers: Peers
    tokens: token_adapter.TokenIssuer
    revocations: AccessRevocations
    identity: IdentityDeps
    limiter: RateLimiter
    idempotency: IdempotencyStore
    report_cache: Cache
    ops_monitor: PostgresRedisOpsMonitor
    contact_sender: SendContactDetails

    async def close(self) -> None:
        await self.peers.close()
        await self.runtime.close()


def _preload_type_codecs(engine: AsyncEngine) -> None:
    """asyncpg introspects array types (roles is varchar[]) on first use per connection, inside
    whatever transaction runs first; that query locks a dozen catalog relations and would count
    against the lock budget. Do it once per new connection, before any unit of work."""

    @event.listens_for(engine.sync_engine, "connect")
    def _warm(dbapi_connection, connection_record):  # noqa: ARG001
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT CAST('{}' AS varchar[])")
        cursor.fetchall()
        cursor.close()
        dbapi_connection.rollback()  # end the driver's implicit transaction: release the catalog locks


def build_gateway(settings: GatewaySettings) -> Gateway:
    runtime = build_runtime(settings)
    _preload_type_codecs(runtime.engine)
    iana_names()  # read now, not in the first request that checks a time zone (50-90 ms)
    tokens = token_adapter.TokenIssuer(
        settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_s
    )
    revocations = AccessRevocations(runtime.redis, settings.redis_namespace, settings.access_token_ttl_s)
    identity = IdentityDeps(
        uow=lambda: IdentityUnitOfWork(runtime.session_factory, runtime.probe),
        passwords=Argon2Passwords(),
        tokens=tokens,
        revocations=revocations,
        new_refresh_token=token_adapter.new_refresh_token,
        digest=token_adapter.digest,
        refresh_ttl_s=settings.refresh_token_ttl_s,
        contact_retry_after=timedelta(seconds=settings.contact_retry_base_s),
    )
    peers = connect_peers(
        {
            "availability": settings.availability_addr,
            "booking": settings.booking_addr,
            "payments": settings.payments_addr,
            "notifications": settings.notifications_addr,
        },
        settings.default_deadline_s,
    )
    limiter = RateLimiter(
        settings.redis_url,
        settings.redis_namespace,
        # Counting needs a round trip per request; under bursts a too-short timeout would fail open.
        max(settings.redis_timeout_s, 2.0),
        {"user": settings.rate_limit_per_user, "ip": settings.rate_limit_per_ip, "login": settings.rate_limit_login},
    )
    return Gateway(
        settings=settings,
        runtime=runtime,
        peers=peers,
        tokens=tokens,
        revocations=revocations,
        identity=identity,
        limiter=limiter,
        idempotency=IdempotencyStore(
            Cache(runtime.redis, settings.redis_namespace, "idempotency"), settings.idempotency_ttl_s
        ),
        report_cache=Cache(runtime.redis, settings.redis_namespace, "reports"),
        ops_monitor=PostgresRedisOpsMonitor(runtime.engine, runtime.redis, settings.redis_namespace),
        contact_sender=notifications_contact_sender(peers, CONTACT_SHARE_TIMEOUT_S),
    )


@dataclass
class RunningGateway:
    server: uvicorn.Server
    task: asyncio.Task
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def make_server(settings: GatewaySettings) -> uvicorn.Server:
    from gateway.entrypoints.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        timeout_keep_alive=settings.http_keep_alive_s,
        server_header=False,
    )
    return uvicorn.Server(config)


async def wait_until_listening(server: uvicorn.Server, task: asyncio.Task) -> int:
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("the gateway stopped before it was listening")
        await asyncio.sleep(0.02)
    return server.servers[0].sockets[0].getsockname()[1]


async def start(settings: GatewaySettings) -> RunningGateway:
    """Serve the API in this event loop (in-process tests); `stop()` shuts it down gracefully."""
    server = make_server(settings)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the host owns signals
    task = asyncio.create_task(server.serve())
    port = await wait_until_listening(server, task)
    return RunningGateway(server, task, port)
