"""Database access shared by every service: the async engine (every connection sets its timeouts
and application_name), the unit of work with the lock probe and outbox staging, and bounded retries
of deadlocks, lock timeouts and serialization failures."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import MetaData, event
from sqlalchemy import engine as sa_engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from kit.config import ServiceSettings
from kit.context import current_operation
from kit.errors import Conflict
from kit.lock_probe import LockBudget, LockProbe
from kit.sql import Driver, outbox_insert

log = logging.getLogger("reserva.db")
T = TypeVar("T")

# The latest slow statements of this process (service, duration_ms, statement, unix time), for the
# operator dashboard (kit.ops_snapshot publishes them).
SLOW_STATEMENTS: deque[tuple[str, float, str, float]] = deque(maxlen=50)

LOCK_NOT_AVAILABLE = "55P03"  # a lock_timeout ran out (or NOWAIT)
RETRYABLE_SQLSTATES = {"40P01", LOCK_NOT_AVAILABLE, "40001"}  # deadlock, lock_not_available, serialization
TIMEOUT_SQLSTATES = {"57014"}  # query_canceled (statement_timeout)


def make_engine(settings: ServiceSettings, url: str | None = None) -> AsyncEngine:
    # Looked up at call time: the OpenTelemetry SQLAlchemy instrumentation (kit.telemetry) wraps it.
    engine = sa_asyncio.create_async_engine(
        url or settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        connect_args={
            "server_settings": {
                "application_name": settings.service_name,
                "statement_timeout": str(settings.statement_timeout_ms),
                "lock_timeout": str(settings.lock_timeout_ms),
                "idle_in_transaction_session_timeout": str(settings.idle_in_transaction_session_timeout_ms),
            }
        },
    )
    _log_slow_statements(engine, settings.slow_statement_ms, settings.service_name)
    _replace_connections_closed_while_idle(engine)
    return engine


def _replace_connections_closed_while_idle(engine: AsyncEngine) -> None:
    """A pooled connection the server ended while it sat idle (a failover or restart, an operator's
    `locks release`, a timeout) is replaced at checkout instead of failing the request that drew
    it: asyncpg noticed the closed socket already, so asking costs no round trip (pool_pre_ping
    would cost one per checkout). A connection that died without a word (a silent network
    partition) is still only found out by its first statement, which fails UNAVAILABLE."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection, connection_record, connection_proxy):  # noqa: ARG001
        if dbapi_connection.driver_connection.is_closed():
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("the server closed this connection while it was idle in the pool")


# Slow-statement threshold (ms) and service name of each engine, for kit.sql's plain statements.
_SLOW_LOGGING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _record_slow(service: str, elapsed_ms: float, statement: str) -> None:
    log.warning(
        "slow statement",
        extra={"duration_ms": round(elapsed_ms, 1), "operation": current_operation.get(), "statement": statement[:500]},
    )
    SLOW_STATEMENTS.append((service, round(elapsed_ms, 1), statement[:500], time.time()))


def _log_slow_statements(engine: AsyncEngine, threshold_ms: int, service: str = "") -> None:
    _SLOW_LOGGING[engine.sync_engine] = (threshold_ms, service)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        conn.info.setdefault("query_start", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _end(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        elapsed_ms = (time.perf_counter() - conn.info["query_start"].pop()) * 1000
        if elapsed_ms > threshold_ms:
            _record_slow(service, elapsed_ms, statement)


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """The MetaData of one service's schema, with one naming convention for every service."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_lock_probe(settings: ServiceSettings) -> LockProbe:
    budget = LockBudget(
        settings.read_lock_budget, settings.write_relation_lock_budget, settings.write_advisory_lock_budget
    )
    return LockProbe(
        settings.service_name,
        budget,
        settings.lock_probe_enabled,
        settings.lock_probe_strict,
        settings.lock_probe_sample_rate,
    )


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, whichever layer (SQLAlchemy, adapter, asyncpg) carries it."""
    seen = error
    for _ in range(4):
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code:
            return str(code)
        seen = getattr(seen, "orig", None) or seen.__cause__
        if seen is None:
            return None
    return None


# The unit of work keeps its repositories and they keep these two handles of it: the handles hold
# it weakly, so a finished unit of work is freed at once by reference counting. A cycle would wait
# for the garbage collector, with its connection wrappers and repositories (a young-generation pass
# over such leftovers took about 10 ms under load).
class _LazySession:
    """Stands for the unit of work's AsyncSession until a statement needs it: a unit of work whose
    statements are all plain SQL (kit.sql) never builds one."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlAlchemyUnitOfWork):
        self._uow = weakref.ref(uow)

    def __getattr__(self, name: str):
        return getattr(self._uow()._real_session(), name)


class _DriverHandle:
    """`await handle()` is `await uow.driver()`: what repositories keep to reach plain SQL."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlAlchemyUnitOfWork):
        self._uow = weakref.ref(uow)

    def __call__(self) -> Awaitable[Driver]:
        return self._uow().driver()


class SqlAlchemyUnitOfWork:
    """One short transaction. Safe by default: leaving the block without `commit()` rolls back.

    Subclasses add repositories in `_open()`. Events collected in `self.events` (outbox messages) are
    written to the service's outbox table in the same transaction by `commit()`.

    Two ways to talk to the database, one transaction: SQLAlchemy (`self.session`, built on first
    use) and plain SQL (`await self.driver()`, kit.sql). A unit of work that starts with plain SQL
    takes a pooled connection directly (no Session, no Connection object: about half the CPU of a
    short transaction); SQLAlchemy statements after that join the same connection."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], probe: LockProbe, outbox=None):
        self._session_factory, self._probe, self._outbox = session_factory, probe, outbox
        self.session: AsyncSession = _LazySession(self)  # type: ignore[assignment]
        self.driver_handle = _DriverHandle(self)  # for repositories: `self.driver` would be a cycle
        self.events: list[Any] = []
        self._committed = False
        self._reset()

    def _reset(self) -> None:
        self._session: AsyncSession | None = None
        self._joined: sa_asyncio.AsyncConnection | None = None  # SQLAlchemy on the plain-SQL connection
        self._pooled = None  # the pooled connection plain SQL took first (PoolProxiedConnection)
        self._driver: Driver | None = None
        self._broken = False
        self._lone = False  # one plain-SQL statement, sent without BEGIN/COMMIT (lone_statement)
        self._wrote_events = False  # outbox rows in this transaction: the relay is woken at commit
        self._measured: bool | None = None  # the probe's decision, when taken before the transaction

    def _open(self) -> None:
        """Hook for subclasses: build repositories on self.session."""

    async def __aenter__(self):
        self.events = []
        self._committed = False
        self._reset()
        self._open()
        return self

    def _engine(self) -> AsyncEngine:
        return self._session_factory.kw["bind"]

    def _real_session(self) -> AsyncSession:
        if self._lone:
            raise RuntimeError("a lone-statement unit of work uses plain SQL only")
        if self._session is None:
            if self._pooled is not None:
                # Plain SQL took the connection first: SQLAlchemy joins it, and its transaction.
                engine = self._engine()
                sync = sa_engine.Connection(engine.sync_engine, connection=self._pooled)
                self._joined = sa_asyncio.AsyncConnection(engine, sync)
                self._session = self._session_factory(bind=self._joined)
            else:
                self._session = self._session_factory()
        return self._session

    def lone_statement(self) -> None:
        """Declare that this unit of work is exactly one plain-SQL statement (call it before that
        statement), its events, if any, written by that statement (events_in_statement). PostgreSQL
        runs a lone statement as a transaction of its own, all or nothing, so it is sent without
        BEGIN and COMMIT: two round trips fewer. Not when the lock probe measures this transaction
        (it needs the transaction still open after the statement): then it is an ordinary
        transaction. A second statement, or an event left for commit, is a programming error."""
        if self._driver is None and self._session is None:
            self._measured = self._probe.will_measure()
            self._lone = not self._measured

    def _in_transaction(self) -> bool:
        if self._session is not None and self._session.in_transaction():
            return True
        return self._pooled is not None and self._pooled.dbapi_connection._transaction is not None

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            failed = self._driver is not None and self._driver.failed
            if exc_type is None and not self._committed and not failed and self._in_transaction():
                # A read-only unit of work: measure it too before it ends. (An aborted one cannot be
                # asked anything more: it is rolled back.)
                await self._measure()
        finally:
            # A connection that died (or was left mid-operation) under plain SQL is never handed
            # back to the pool: SQLAlchemy notices that for its own statements, not for these.
            broken = self._broken or (self._driver is not None and self._driver.broken())
            if self._session is not None:
                if broken:
                    await (await self._session.connection()).invalidate()
                await self._session.rollback()
                await self._session.close()
                if self._joined is not None:
                    await self._joined.close()  # hands the pooled connection back
            elif self._pooled is not None:
                await self._release(broken)

    async def _release(self, broken: bool) -> None:
        pooled = self._pooled
        try:
            if not broken and pooled.dbapi_connection._transaction is not None:
                try:
                    await greenlet_spawn(pooled.dbapi_connection.rollback)
                except Exception:
                    broken = True
            if broken or pooled.driver_connection.is_closed():
                await greenlet_spawn(pooled.invalidate)
        finally:
            await greenlet_spawn(pooled.close)

    async def driver(self) -> Driver:
        """This transaction's asyncpg connection for plain SQL (kit.sql): the hot paths' statements
        without SQLAlchemy's per-statement cost. Same transaction as `self.session`."""
        if self._driver is None:
            if self._session is not None:
                connection = await self._session.connection()
                pooled = await connection.get_raw_connection()
            else:
                self._pooled = pooled = await self._engine().raw_connection()
            adapted = pooled.dbapi_connection
            if adapted._transaction is None and pooled.driver_connection.is_in_transaction():
                # A connection handed back mid-transaction (its user cancelled while ending it):
                # that work was never committed; end it before this unit of work runs, above all a
                # lone statement, which would otherwise run inside it and be rolled back with it.
                await pooled.driver_connection.execute("ROLLBACK")
            # SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its own first statement; plain
            # SQL begins it here, through the adapter, so that SQLAlchemy sees the same transaction.
            if adapted._transaction is None and not self._lone:
                try:
                    await adapted._start_transaction()
                except Exception as error:
                    self._broken = True
                    raise DBAPIError("BEGIN", (), error, connection_invalidated=True) from error
            engine = self._engine().sync_engine
            threshold_ms, service = _SLOW_LOGGING.get(engine, (200, ""))
            self._driver = Driver(
                pooled.driver_connection,
                threshold_ms,
                engine.url.database or "",
                lambda ms, sql: _record_slow(service, ms, sql),
                statements_allowed=1 if self._lone else None,
            )
        return self._driver

    async def _measure(self) -> None:
        if self._lone:
            return  # its transaction ended with its statement; the probe chose not to measure it
        if self._driver is not None:
            await self._probe.check_driver(self._driver, current_operation.get(), self._measured)
        else:
            await self._probe.check(self.session, current_operation.get())

    def events_in_statement(self, first: int, when: str, to_message=None) -> tuple[str, list[Any]]:
        """This unit of work's events as an outbox INSERT to run as a CTE of the caller's own
        statement (parameters numbered from `first`, rows written only `when`): a change and its
        events in one statement, which a lone statement needs. The events are staged then, not at
        commit."""
        messages = [to_message(e) for e in self.events] if to_message else list(self.events)
        self.events = []
        if not messages:
            return "SELECT 1 WHERE false", []  # a CTE that writes nothing
        self._wrote_events = True
        return outbox_insert(self._outbox, messages, first, when)

    async def commit(self) -> None:
        if self._lone:
            if self.events:
                raise RuntimeError("a lone-statement unit of work cannot stage events")
            if self._driver is not None and self._driver.in_transaction():
                raise RuntimeError("a lone statement ran inside a transaction: it did not commit")
            self._committed = True  # PostgreSQL committed the statement when it ended
            self._wake_relay()
            return
        if self.events and self._outbox is not None:
            self._wrote_events = True
            if self._driver is not None:
                sql, params = outbox_insert(self._outbox, self.events)
                await self._driver.execute(sql, *params)
            else:
                await self._outbox.stage(self.session, self.events)
            self.events = []
        await self._measure()
        if self._session is not None:
            await self._session.commit()
        elif self._pooled is not None:
            try:
                await greenlet_spawn(self._pooled.dbapi_connection.commit)
            except Exception as error:
                self._broken = self._pooled.driver_connection.is_closed()
                raise DBAPIError("COMMIT", (), error, connection_invalidated=self._broken) from error
        self._committed = True
        self._wake_relay()

    def _wake_relay(self) -> None:
        if self._wrote_events and self._outbox is not None:
            self._outbox.committed()

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()
        elif self._pooled is not None and self._pooled.dbapi_connection._transaction is not None:
            await greenlet_spawn(self._pooled.dbapi_connection.rollback)


async def with_retries(attempt: Callable[[], Awaitable[T]], attempts: int = 4, base_delay_s: float = 0.005) -> T:
    """Run a whole transaction again on deadlock, lock timeout or serialization failure; after the
    last attempt answer Conflict (ABORTED), never a generic error."""
    for n in range(attempts):
        try:
            return await attempt()
        except DBAPIError as error:
            state = sqlstate_of(error)
            if state in TIMEOUT_SQLSTATES:
                raise Conflict("the database was too busy to answer in time; retry") from error
            if state not in RETRYABLE_SQLSTATES:
                raise
            if n == attempts - 1:
                raise Conflict(f"concurrent modification (SQLSTATE {state}) persisted after retries") from error
            await asyncio.sleep(base_delay_s * (2**n) * (1 + random.random()))
    raise AssertionError("unreachable")
