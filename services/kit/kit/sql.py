"""Plain SQL for the hot paths: the asyncpg connection of a unit of work's own transaction, with no
SQLAlchemy statement building, compilation or result processing per statement (about 0.15 ms of CPU
each, a large share of a short write). Statements are literal SQL with $n parameters, prepared once
per connection by asyncpg's statement cache.

What stays the same as on the SQLAlchemy path: the transaction (the unit of work's, begun and ended
by its session), the errors (database errors are raised as sqlalchemy.exc.DBAPIError carrying the
driver's error, so `with_retries` and the interceptor's mapping see one kind), slow statements are
logged, statements are client spans when the libraries are instrumented, and a connection found
dead is invalidated rather than returned to the pool.

Parameters are scalars or text arrays only: a range, composite or other array type makes asyncpg
introspect the catalog on each new connection, inside the transaction (extra locks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import DBAPIError

from kit import telemetry

_tracer = trace.get_tracer("reserva.kit.sql")


class Driver:
    """Statements on one asyncpg connection inside a transaction someone else begins and ends."""

    __slots__ = ("_conn", "_slow_s", "_db_name", "_on_slow", "lost", "failed", "_allowed")

    def __init__(
        self,
        conn: asyncpg.Connection,
        slow_statement_ms: float,
        db_name: str = "",
        on_slow: Callable[[float, str], None] | None = None,
        statements_allowed: int | None = None,
    ):
        self._conn, self._slow_s, self._db_name, self._on_slow = conn, slow_statement_ms / 1000, db_name, on_slow
        self.lost = False  # the connection died under a statement: the unit of work discards it
        # A statement failed: PostgreSQL aborted the transaction, which can only be rolled back (a
        # caller may still have taken the failure as an answer, e.g. a unique violation as a replay).
        self.failed = False
        # A lone statement runs outside any transaction block: a second one would not be atomic with it.
        self._allowed = statements_allowed

    def in_transaction(self) -> bool:
        """Whether the connection is inside a transaction block (asyncpg's own record of it)."""
        return self._conn.is_in_transaction()

    def broken(self) -> bool:
        """Whether the connection must not go back to the pool."""
        return self.lost or self._conn.is_closed()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run(self._conn.fetch, sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._run(self._conn.fetchrow, sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(self._conn.fetchval, sql, args)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self._run(self._conn.execute, sql, args)

    async def _run(self, method, sql: str, args: Sequence[Any]):
        if self._allowed is not None:
            if self._allowed == 0:
                raise RuntimeError("a lone-statement unit of work ran a second statement")
            self._allowed -= 1
        span = None
        if telemetry.libraries_instrumented() and not telemetry.parent_unsampled():
            verb = sql.lstrip().split(None, 1)[0] if sql.strip() else "SQL"
            span = _tracer.start_span(f"{verb} {self._db_name}".strip(), kind=SpanKind.CLIENT)
            if span.is_recording():
                span.set_attribute("db.system", "postgresql")
                span.set_attribute("db.name", self._db_name)
                span.set_attribute("db.statement", sql)
        started = time.perf_counter()
        try:
            return await method(sql, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            self.lost, self.failed = self._conn.is_closed(), True
            if span is not None:
                span.record_exception(error)
            raise DBAPIError(sql, tuple(args), error, connection_invalidated=self.lost) from error
        except asyncpg.InternalClientError as error:
            # The connection's protocol is in a state it should not be (an operation interrupted):
            # unusable, like a closed one.
            self.lost = True
            if span is not None:
                span.record_exception(error)
            raise DBAPIError(sql, tuple(args), error, connection_invalidated=self.lost) from error
        finally:
            elapsed = time.perf_counter() - started
            if span is not None:
                span.end()
            if elapsed > self._slow_s and self._on_slow is not None:
                self._on_slow(elapsed * 1000, sql)


def values_rows(rows: int, columns: int, first: int = 1, casts: Sequence[str] = ()) -> str:
    """`($1, $2), ($3, $4)`-style VALUES rows for `rows` rows of `columns` parameters, numbered from
    `first`; `casts[i]` (e.g. "::uuid") is appended to the i-th column's parameter."""
    casts = list(casts) + [""] * (columns - len(casts))
    out, n = [], first
    for _ in range(rows):
        out.append("(" + ", ".join(f"${n + i}{casts[i]}" for i in range(columns)) + ")")
        n += columns
    return ", ".join(out)


def outbox_insert(outbox, messages: Sequence, first: int = 1, when: str | None = None) -> tuple[str, list[Any]]:
    """The INSERT (and its parameters, numbered from `first`) that stages `messages` into the
    service's outbox table: one statement for any number of events. With `when` (an SQL condition)
    it is meant as a CTE of a larger statement: the rows are written only if the condition holds,
    e.g. `EXISTS (SELECT 1 FROM inserted)`, so the events exist exactly when the change does."""
    columns = f"{outbox.table.schema}.{outbox.table.name} (event_id, event_type, aggregate_id, envelope)"
    if when is None:
        sql = f"INSERT INTO {columns} VALUES {values_rows(len(messages), 4, first, ('::uuid',))}"
    else:
        rows = values_rows(len(messages), 4, first, ("::uuid", "::text", "::text", "::bytea"))
        sql = f"INSERT INTO {columns} SELECT * FROM (VALUES {rows}) AS v WHERE {when}"
    params: list[Any] = []
    for m in messages:
        params += [m.event_id, m.event_type, m.aggregate_id, outbox.envelope(m)]
    return sql, params


# (first parameter number, condition) -> an outbox INSERT and its parameters, to run as a CTE of
# the caller's statement (kit.db.SqlAlchemyUnitOfWork.events_in_statement).
EventsInStatement = Callable[[int, str], tuple[str, list[Any]]]
# Where a statement (its WITH list, after its last CTE) may take the outbox CTE.
OUTBOX_CTE = "/*outbox*/"


def with_events(
    sql: str, args: Sequence[Any], events: EventsInStatement | None, condition: str
) -> tuple[str, list[Any]]:
    """`sql` (holding OUTBOX_CTE) and its `args` with the unit of work's events written by the same
    statement, only if `condition` holds (e.g. `EXISTS (SELECT 1 FROM saved)`), so that the events
    exist exactly when the change does; or the statement as it is without `events`."""
    if events is None:
        return sql.replace(OUTBOX_CTE, ""), list(args)
    outbox_sql, outbox_args = events(len(args) + 1, condition)
    return sql.replace(OUTBOX_CTE, f", outbox AS ({outbox_sql})"), [*args, *outbox_args]


def param_cast(column) -> str:
    """The cast a $n parameter for `column` needs where PostgreSQL infers no type (INSERT ... SELECT,
    SET, CTEs). Strings are cast to text, not varchar(n): an explicit varchar(n) cast silently cuts
    a long value, while the column itself refuses it (data exception, as on the SQLAlchemy path)."""
    from sqlalchemy import String
    from sqlalchemy.dialects import postgresql

    if isinstance(column.type, String):
        return "::text"
    return "::" + column.type.compile(dialect=postgresql.dialect()).lower()


def select_list(table, prefix: str = "") -> str:
    """Every column of `table` for a plain SELECT or RETURNING, UUIDs as text (as the SQLAlchemy
    path returns them with UUID(as_uuid=False))."""
    from sqlalchemy.dialects.postgresql import UUID

    return ", ".join(
        f"{prefix}{c.name}::text AS {c.name}" if isinstance(c.type, UUID) else f"{prefix}{c.name}" for c in table.c
    )


class Row:
    """Attribute access to a plain-SQL record, as the repositories' `*_from_row` functions read rows."""

    __slots__ = ("_record",)

    def __init__(self, record):
        self._record = record

    def __getattr__(self, name):
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None
