"""`reserva locks`: the operator's tools for lock emergencies (US-LOCK-011, US-LOCK-012).

    status     locks per backend and per service (application_name), and how full the shared lock
               table is: max_locks_per_transaction x (max_connections + max_prepared_transactions)
    blocking   the tree of who blocks whom (pg_blocking_pids)
    long       transactions and queries running longer than --threshold seconds
    idle       sessions idle in a transaction
    release    cancel, then terminate after --grace seconds, the platform's own stuck sessions

The queries are plain async functions over an asyncpg connection so that the gateway's operator
dashboard can call them too. They look at one database (the platform's); the lock table is the
cluster's, so its usage counts every database.

Why fast path matters: a backend keeps up to 16 weak relation locks in its own fast-path slots;
past them, and for every strong lock, a lock takes a slot in the shared table sized above. When that
table is full every backend of the cluster fails with "out of shared memory"."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import asyncpg

from kit.paths import SCHEMAS

log = logging.getLogger("reserva.locks")

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Only the platform's own login roles may be cancelled or terminated; never a person's session,
# a replication or maintenance role, or another application sharing the cluster.
PLATFORM_ROLES = frozenset(role for _, role, _ in SCHEMAS.values())
CAPACITY_WARNING_RATIO = 0.8
IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")


# --- what the database tells -------------------------------------------------------------------


@dataclass(frozen=True)
class LockCapacity:
    max_locks_per_transaction: int
    max_connections: int
    max_prepared_transactions: int
    fast_path_locks: int  # held in backends' own slots: they do not use the shared table
    shared_table_locks: int  # slots taken in the shared lock table, all databases

    @property
    def capacity(self) -> int:
        return self.max_locks_per_transaction * (self.max_connections + self.max_prepared_transactions)

    @property
    def usage_ratio(self) -> float:
        return self.shared_table_locks / self.capacity if self.capacity else 0.0

    @property
    def near_exhaustion(self) -> bool:
        return self.usage_ratio >= CAPACITY_WARNING_RATIO

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "capacity": self.capacity,
            "usage_ratio": round(self.usage_ratio, 4),
            "near_exhaustion": self.near_exhaustion,
        }


@dataclass(frozen=True)
class Backend:
    """One client session of the database, with the locks it holds and what it waits for."""

    pid: int
    usename: str | None
    application_name: str
    state: str | None
    backend_start: datetime | None
    xact_start: datetime | None
    xact_age_s: float | None
    query_age_s: float | None
    state_age_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    query: str
    locks: int
    relation_locks: int
    fast_path_locks: int
    slow_path_locks: int
    waiting_locks: int
    waiting_for: str | None
    blocked_by: tuple[int, ...]

    @property
    def platform_role(self) -> bool:
        return self.usename in PLATFORM_ROLES

    @property
    def idle_in_transaction(self) -> bool:
        return self.state in IDLE_STATES


@dataclass(frozen=True)
class ApplicationLocks:
    application_name: str
    backends: int
    locks: int
    fast_path_locks: int
    slow_path_locks: int
    max_locks_per_backend: int
    waiting_backends: int


@dataclass
class BlockingNode:
    backend: Backend
    blocks: list[BlockingNode] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**_backend_dict(self.backend), "blocks": [child.as_dict() for child in self.blocks]}


CAPACITY_SQL = """
SELECT current_setting('max_locks_per_transaction')::int AS max_locks_per_transaction,
       current_setting('max_connections')::int           AS max_connections,
       current_setting('max_prepared_transactions')::int AS max_prepared_transactions,
       count(*) FILTER (WHERE fastpath)                   AS fast_path_locks,
       count(*) FILTER (WHERE NOT fastpath)               AS shared_table_locks
  FROM pg_locks
"""

# pg_locks is read once and aggregated per pid. pg_blocking_pids briefly takes the lock manager's
# locks, so it is asked only for sessions that actually wait on a lock.
BACKENDS_SQL = """
WITH held AS (
    SELECT pid,
           count(*)                                        AS locks,
           count(*) FILTER (WHERE locktype = 'relation')   AS relation_locks,
           count(*) FILTER (WHERE fastpath)                AS fast_path_locks,
           count(*) FILTER (WHERE NOT fastpath)            AS slow_path_locks,
           count(*) FILTER (WHERE NOT granted)             AS waiting_locks,
           string_agg(CASE WHEN NOT granted THEN
                          concat_ws(' ', mode, 'on', locktype, relation::regclass::text,
                                    transactionid::text)
                      END, ', ')                           AS waiting_for
      FROM pg_locks
     WHERE pid IS NOT NULL
     GROUP BY pid
)
SELECT a.pid,
       a.usename::text                                     AS usename,
       coalesce(a.application_name, '')                    AS application_name,
       a.state,
       a.backend_start,
       a.xact_start,
       extract(epoch FROM now() - a.xact_start)::float8    AS xact_age_s,
       extract(epoch FROM now() - a.query_start)::float8   AS query_age_s,
       extract(epoch FROM now() - a.state_change)::float8  AS state_age_s,
       a.wait_event_type,
       a.wait_event,
       left(coalesce(a.query, ''), 300)                    AS query,
       coalesce(h.locks, 0)::int                           AS locks,
       coalesce(h.relation_locks, 0)::int                  AS relation_locks,
       coalesce(h.fast_path_locks, 0)::int                 AS fast_path_locks,
       coalesce(h.slow_path_locks, 0)::int                 AS slow_path_locks,
       coalesce(h.waiting_locks, 0)::int                   AS waiting_locks,
       h.waiting_for,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid)
            ELSE '{}'::int[] END                           AS blocked_by
  FROM pg_stat_activity a
  LEFT JOIN held h USING (pid)
 WHERE a.datname = $1
   AND a.backend_type = 'client backend'
   AND a.pid <> pg_backend_pid()
 ORDER BY coalesce(h.locks, 0) DESC, a.pid
"""


async def lock_capacity(conn: asyncpg.Connection) -> LockCapacity:
    """How full the cluster's shared lock table is."""
    row = await conn.fetchrow(CAPACITY_SQL)
    return LockCapacity(**dict(row))


async def backends(conn: asyncpg.Connection, database: str) -> list[Backend]:
    """Every client session of `database` (but this one), most locks first."""
    rows = await conn.fetch(BACKENDS_SQL, database)
    return [Backend(**{**dict(r), "blocked_by": tuple(r["blocked_by"] or ())}) for r in rows]


def per_application(sessions: Iterable[Backend]) -> list[ApplicationLocks]:
    """Locks summed per application_name (each service names its connections after itself)."""
    groups: dict[str, list[Backend]] = {}
    for b in sessions:
        groups.setdefault(b.application_name or "(unnamed)", []).append(b)
    summary = [
        ApplicationLocks(
            application_name=name,
            backends=len(members),
            locks=sum(b.locks for b in members),
            fast_path_locks=sum(b.fast_path_locks for b in members),
            slow_path_locks=sum(b.slow_path_locks for b in members),
            max_locks_per_backend=max(b.locks for b in members),
            waiting_backends=sum(1 for b in members if b.waiting_locks),
        )
        for name, members in groups.items()
    ]
    return sorted(summary, key=lambda s: (-s.locks, s.application_name))


def build_blocking_tree(sessions: Sequence[Backend]) -> list[BlockingNode]:
    """Roots are sessions that block others without waiting themselves (or, in a cycle, the
    lowest pid of it); each node's children are the sessions it blocks."""
    by_pid = {b.pid: b for b in sessions}
    blocked_by_edges: dict[int, list[int]] = {}
    for b in sessions:
        for blocker in b.blocked_by:
            blocked_by_edges.setdefault(blocker, []).append(b.pid)
    involved = {b.pid for b in sessions if b.blocked_by} | set(blocked_by_edges)
    roots = sorted(p for p in involved if p in by_pid and not by_pid[p].blocked_by)
    seen: set[int] = set()

    def node(pid: int) -> BlockingNode:
        seen.add(pid)
        children = [node(c) for c in sorted(blocked_by_edges.get(pid, [])) if c not in seen and c in by_pid]
        return BlockingNode(by_pid[pid], children)

    tree = [node(p) for p in roots]
    for pid in sorted(involved):  # waits in a cycle, or on a session outside this database
        if pid not in seen and pid in by_pid:
            tree.append(node(pid))
    return tree


async def blocking_tree(conn: asyncpg.Connection, database: str) -> list[BlockingNode]:
    """Who blocks whom in `database` right now."""
    return build_blocking_tree(await backends(conn, database))


def select_long_running(sessions: Iterable[Backend], threshold_s: float) -> list[Backend]:
    def too_long(b: Backend) -> bool:
        in_xact = b.xact_age_s is not None and b.xact_age_s >= threshold_s
        in_query = b.state == "active" and b.query_age_s is not None and b.query_age_s >= threshold_s
        return in_xact or in_query

    return sorted((b for b in sessions if too_long(b)), key=lambda b: -(b.xact_age_s or b.query_age_s or 0))


async def long_running(conn: asyncpg.Connection, database: str, threshold_s: float) -> list[Backend]:
    """Transactions, or queries, running for at least `threshold_s` seconds, oldest first."""
    return select_long_running(await backends(conn, database), threshold_s)


def select_idle_in_transaction(sessions: Iterable[Backend], min_idle_s: float = 0.0) -> list[Backend]:
    chosen = (b for b in sessions if b.idle_in_transaction and (b.state_age_s or 0) >= min_idle_s)
    return sorted(chosen, key=lambda b: -(b.state_age_s or 0))


async def idle_in_transaction(conn: asyncpg.Connection, database: str, min_idle_s: float = 0.0) -> list[Backend]:
    """Sessions that opened a transaction and wait for their client, holding its locks."""
    return select_idle_in_transaction(await backends(conn, database), min_idle_s)


# --- release -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseAction:
    pid: int
    usename: str | None
    application_name: str
    action: str  # cancel | terminate | released | refuse | skip
    done: bool  # False in a dry run and for refusals
    detail: str


def _record(actions: list[ReleaseAction], b: Backend | None, pid: int, action: str, done: bool, detail: str):
    entry = ReleaseAction(pid, b.usename if b else None, b.application_name if b else "", action, done, detail)
    actions.append(entry)
    level = logging.WARNING if action in ("cancel", "terminate", "refuse") else logging.INFO
    log.log(level, "locks release: %s pid %s (%s)", action, pid, detail, extra={"release": asdict(entry)})


def choose_targets(
    sessions: Sequence[Backend],
    pids: Sequence[int] = (),
    older_than_s: float | None = None,
    only_blockers: bool = False,
) -> tuple[list[Backend], list[tuple[int, Backend | None, str, str]]]:
    """The sessions `release` may act on, and the others it must leave alone with the reason why
    (action "refuse" for a session explicitly asked for, "skip" for one merely matching)."""
    by_pid = {b.pid: b for b in sessions}
    blockers = {p for b in sessions for p in b.blocked_by}
    chosen: list[Backend] = []
    left: list[tuple[int, Backend | None, str, str]] = []
    if pids:
        for pid in pids:
            b = by_pid.get(pid)
            if b is None:
                left.append((pid, None, "refuse", "not a client session of this database"))
            elif not b.platform_role:
                left.append((pid, b, "refuse", f"role {b.usename!r} is not one of the platform's roles"))
            else:
                chosen.append(b)
        return chosen, left
    for b in sessions:
        if b.xact_age_s is None or older_than_s is None or b.xact_age_s < older_than_s:
            continue
        if only_blockers and b.pid not in blockers:
            continue
        if not b.platform_role:
            left.append((b.pid, b, "skip", f"role {b.usename!r} is not one of the platform's roles"))
        else:
            chosen.append(b)
    return chosen, left


async def _still_in_same_transaction(conn: asyncpg.Connection, targets: Sequence[Backend]) -> list[Backend]:
    """Targets whose session still runs the very transaction seen before the cancel."""
    rows = await conn.fetch(
        "SELECT pid, backend_start, xact_start FROM pg_stat_activity WHERE pid = ANY($1::int[])",
        [b.pid for b in targets],
    )
    now = {r["pid"]: (r["backend_start"], r["xact_start"]) for r in rows}
    return [b for b in targets if b.xact_start is not None and now.get(b.pid) == (b.backend_start, b.xact_start)]


async def release(
    conn: asyncpg.Connection,
    database: str,
    *,
    pids: Sequence[int] = (),
    older_than_s: float | None = None,
    only_blockers: bool = False,
    grace_s: float = 10.0,
    dry_run: bool = False,
    poll_s: float = 0.1,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[ReleaseAction]:
    """Cancel the chosen sessions' statements; terminate those still in the same transaction after
    `grace_s`. Only the platform's roles are touched. Every action is logged and returned.

    A cancelled statement makes the service's unit of work roll back (nothing committed is lost);
    a session idle in a transaction ignores a cancel, so it is terminated once the grace is over."""
    if not pids and older_than_s is None:
        raise ValueError("release needs pids or older_than_s")
    actions: list[ReleaseAction] = []
    targets, left = choose_targets(await backends(conn, database), pids, older_than_s, only_blockers)
    for pid, b, action, detail in left:
        _record(actions, b, pid, action, False, detail)
    for b in targets:
        what = f"{b.state}, transaction {_age(b.xact_age_s)}, {b.locks} locks"
        if dry_run:
            _record(actions, b, b.pid, "cancel", False, f"dry run: would cancel ({what})")
            _record(actions, b, b.pid, "terminate", False, f"dry run: would terminate if still stuck after {grace_s}s")
            continue
        sent = await conn.fetchval("SELECT pg_cancel_backend($1)", b.pid)
        _record(actions, b, b.pid, "cancel", bool(sent), what if sent else f"cancel not delivered ({what})")
    if dry_run or not targets:
        return actions
    deadline = clock() + grace_s
    stuck = await _still_in_same_transaction(conn, targets)
    while stuck and clock() < deadline:
        await sleep(min(poll_s, max(0.0, deadline - clock())))
        stuck = await _still_in_same_transaction(conn, stuck)
    stuck_pids = {b.pid for b in stuck}
    for b in targets:
        if b.pid in stuck_pids:
            ended = await conn.fetchval("SELECT pg_terminate_backend($1)", b.pid)
            detail = f"still in the same transaction after {grace_s}s"
            _record(actions, b, b.pid, "terminate", bool(ended), detail if ended else f"{detail}; terminate failed")
        else:
            _record(actions, b, b.pid, "released", True, "its transaction ended after the cancel")
    return actions


# --- the command line --------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _backend_dict(b: Backend) -> dict:
    return {**asdict(b), "blocked_by": list(b.blocked_by), "platform_role": b.platform_role}


def _backend_rows(sessions: Iterable[Backend]) -> list[list[object]]:
    return [
        [
            b.pid,
            b.usename,
            b.application_name,
            b.state,
            _age(b.xact_age_s),
            _age(b.query_age_s),
            b.locks,
            b.fast_path_locks,
            b.slow_path_locks,
            b.waiting_for or "",
            _short(b.query),
        ]
        for b in sessions
    ]


BACKEND_HEADERS = (
    "pid",
    "user",
    "application",
    "state",
    "xact",
    "query age",
    "locks",
    "fast",
    "slow",
    "waits for",
    "query",
)


def render_status(capacity: LockCapacity, sessions: Sequence[Backend], database: str) -> str:
    percent = 100 * capacity.usage_ratio
    warning = "  <-- NEAR EXHAUSTION: see deploy/RUNBOOK.md" if capacity.near_exhaustion else ""
    head = (
        f"Shared lock table: {capacity.shared_table_locks} of {capacity.capacity} slots ({percent:.1f}%){warning}\n"
        f"  = max_locks_per_transaction {capacity.max_locks_per_transaction} x (max_connections "
        f"{capacity.max_connections} + max_prepared_transactions {capacity.max_prepared_transactions})\n"
        f"  fast-path locks (outside the table): {capacity.fast_path_locks}"
    )
    apps = render_table(
        ("application", "backends", "locks", "fast", "slow", "max/backend", "waiting"),
        [
            [
                a.application_name,
                a.backends,
                a.locks,
                a.fast_path_locks,
                a.slow_path_locks,
                a.max_locks_per_backend,
                a.waiting_backends,
            ]
            for a in per_application(sessions)
        ],
    )
    return (
        f"{head}\n\nLocks per service (application_name) in database {database}:\n{apps}\n\n"
        f"Locks per backend:\n{render_table(BACKEND_HEADERS, _backend_rows(sessions))}"
    )


def render_tree(tree: Sequence[BlockingNode]) -> str:
    if not tree:
        return "No session waits on a lock."
    lines: list[str] = []

    def walk(n: BlockingNode, depth: int) -> None:
        b = n.backend
        waits = f" waits for {b.waiting_for}" if b.waiting_for else ""
        lines.append(
            f"{'    ' * depth}{'└── ' if depth else ''}pid {b.pid} {b.usename} [{b.application_name}] {b.state}, "
            f"xact {_age(b.xact_age_s)}, {b.locks} locks{waits}: {_short(b.query)}"
        )
        for child in n.blocks:
            walk(child, depth + 1)

    for root in tree:
        walk(root, 0)
    return "\n".join(lines)


def render_actions(actions: Sequence[ReleaseAction]) -> str:
    if not actions:
        return "No session matched."
    rows = [[a.pid, a.usename, a.application_name, a.action, "yes" if a.done else "no", a.detail] for a in actions]
    return render_table(("pid", "user", "application", "action", "done", "detail"), rows)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database",
        default=os.environ.get("RESERVA_DATABASE_NAME", "reserva"),
        help="the platform's database (env RESERVA_DATABASE_NAME, default reserva)",
    )
    common.add_argument(
        "--admin-url",
        default=os.environ.get("RESERVA_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="a superuser or pg_signal_backend+pg_monitor URL (env RESERVA_ADMIN_DATABASE_URL)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = argparse.ArgumentParser(prog="reserva locks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", parents=[common], help="locks per backend and service, lock table usage")
    sub.add_parser("blocking", parents=[common], help="tree of who blocks whom")
    p = sub.add_parser("long", parents=[common], help="long transactions and queries")
    p.add_argument("--threshold", type=float, default=30.0, help="seconds (default 30)")
    p = sub.add_parser("idle", parents=[common], help="sessions idle in a transaction")
    p.add_argument("--min-idle", type=float, default=0.0, help="seconds idle at least (default 0)")
    p = sub.add_parser("release", parents=[common], help="cancel, then terminate, stuck platform sessions")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=int, action="append", help="a session to release (repeatable)")
    target.add_argument("--older-than", type=float, help="every platform session whose transaction is this old (s)")
    p.add_argument("--only-blockers", action="store_true", help="with --older-than: only sessions blocking others")
    p.add_argument("--grace", type=float, default=10.0, help="seconds between cancel and terminate (default 10)")
    p.add_argument("--dry-run", action="store_true", help="show what would be done, do nothing")
    return parser


async def _run(args: argparse.Namespace) -> tuple[str, int]:
    from kit.provision import admin_dsn

    conn = await asyncpg.connect(admin_dsn(args.admin_url, args.database), timeout=10)
    try:
        await conn.execute("SET application_name = 'reserva-locks-cli'")
        if args.command == "status":
            capacity, sessions = await lock_capacity(conn), await backends(conn, args.database)
            if args.json:
                body = {
                    "database": args.database,
                    "capacity": capacity.as_dict(),
                    "per_application": [asdict(a) for a in per_application(sessions)],
                    "backends": [_backend_dict(b) for b in sessions],
                }
                return _dumps(body), 0
            return render_status(capacity, sessions, args.database), 0
        if args.command == "blocking":
            tree = await blocking_tree(conn, args.database)
            return (_dumps([n.as_dict() for n in tree]) if args.json else render_tree(tree)), 0
        if args.command in ("long", "idle"):
            if args.command == "long":
                found = await long_running(conn, args.database, args.threshold)
            else:
                found = await idle_in_transaction(conn, args.database, args.min_idle)
            if args.json:
                return _dumps([_backend_dict(b) for b in found]), 0
            return (render_table(BACKEND_HEADERS, _backend_rows(found)) if found else "None."), 0
        actions = await release(
            conn,
            args.database,
            pids=args.pid or (),
            older_than_s=args.older_than,
            only_blockers=args.only_blockers,
            grace_s=args.grace,
            dry_run=args.dry_run,
        )
        code = 1 if any(a.action == "refuse" for a in actions) else 0
        return (_dumps([asdict(a) for a in actions]) if args.json else render_actions(actions)), code
    finally:
        await conn.close()


def _dumps(body: object) -> str:
    return json.dumps(body, indent=2, default=str)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if not logging.getLogger().handlers:
        # Actions are logged to stderr, so that stdout stays a table or JSON.
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        output, code = asyncio.run(_run(args))
    except (OSError, asyncpg.PostgresError) as error:
        print(f"reserva locks: cannot query {args.database}: {error}", file=sys.stderr)
        return 2
    print(output)
    return code
