"""The operator dashboard's figures in one document: what PostgreSQL shows live (locks per service,
who blocks whom, slow statements, long transactions, the shared lock table) merged with what each
process publishes about itself (outbox backlog, cache hits, lock probe figures per operation, the
slow statements it logged). Plain composition: the adapter (gateway.adapters.ops_monitor) reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from kit.locks_cli import Backend, LockCapacity, per_application, select_idle_in_transaction, select_long_running

# The platform's processes, as they name their connections (application_name) and snapshots.
PLATFORM_SERVICES = ("availability", "booking", "payments", "notifications", "gateway")
TOP_OPERATIONS = 10
NO_LOCKS = ("backends", "locks", "fast_path_locks", "slow_path_locks", "max_locks_per_backend", "waiting_backends")


@dataclass(frozen=True)
class DatabaseActivity:
    database: str
    capacity: LockCapacity
    sessions: Sequence[Backend]
    # False when the gateway's role lacks pg_monitor: other roles' states and queries are hidden.
    full_visibility: bool


class OpsMonitor(Protocol):
    async def database_activity(self) -> DatabaseActivity: ...

    async def snapshots(self) -> list[dict[str, Any]] | None: ...


async def ops_overview(monitor: OpsMonitor, slow_statement_ms: int) -> dict[str, Any]:
    """Everything the dashboard shows, read now."""
    return build_overview(await monitor.database_activity(), await monitor.snapshots(), slow_statement_ms)


def _session(b: Backend) -> dict[str, Any]:
    return {
        "pid": b.pid,
        "usename": b.usename,
        "application_name": b.application_name,
        "state": b.state,
        "xact_age_s": _round(b.xact_age_s),
        "query_age_s": _round(b.query_age_s),
        "state_age_s": _round(b.state_age_s),
        "locks": b.locks,
        "waiting_for": b.waiting_for,
        "blocked_by": list(b.blocked_by),
        "query": b.query,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _outside(pid: int) -> dict[str, Any]:
    """A blocker in another database of the cluster: only its pid is known here."""
    return {"pid": pid, "application_name": "(another database)", "state": None, "query": ""}


def blocked_sessions(sessions: Sequence[Backend]) -> list[dict[str, Any]]:
    """Each session that waits on a lock, with the sessions it waits for."""
    by_pid = {b.pid: b for b in sessions}
    rows = []
    for b in sessions:
        if not b.blocked_by:
            continue
        blockers = [_session(by_pid[p]) if p in by_pid else _outside(p) for p in b.blocked_by]
        rows.append({**_session(b), "blockers": blockers})
    return sorted(rows, key=lambda r: -(r["state_age_s"] or 0))


def _merge_operations(snapshots: Iterable[dict]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for s in snapshots:
        for op in s.get("locks", {}).get("operations", []):
            key = (op["operation"], op["kind"])
            if key not in merged:
                merged[key] = dict(op)
                continue
            m = merged[key]
            m["transactions"] += op["transactions"]
            for field in ("max_locks", "max_relation_locks", "max_advisory_locks"):
                m[field] = max(m[field], op[field])
    return sorted(merged.values(), key=lambda o: (-o["max_locks"], o["operation"]))[:TOP_OPERATIONS]


def _rate(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


def _service_figures(name: str, live: dict[str, Any] | None, snapshots: list[dict]) -> dict[str, Any]:
    locks = [s["locks"] for s in snapshots if s.get("locks")]
    caches = [s["cache"] for s in snapshots if s.get("cache")]
    outboxes = [s["outbox"] for s in snapshots if s.get("outbox")]
    hits, misses = sum(c["hits"] for c in caches), sum(c["misses"] for c in caches)
    recent_hits, recent_misses = sum(c["recent_hits"] for c in caches), sum(c["recent_misses"] for c in caches)
    ages = [o["oldest_age_s"] for o in outboxes if o.get("oldest_age_s") is not None]
    return {
        "service": name,
        "instances": len(snapshots),
        "snapshot_age_s": min((s["age_s"] for s in snapshots), default=None),
        "live_locks": live or dict.fromkeys(NO_LOCKS, 0),
        "lock_probe": {
            "transactions": sum(x["transactions"] for x in locks),
            "max_locks": max((x["max_locks"] for x in locks), default=0),
            "max_relation_locks": max((x["max_relation_locks"] for x in locks), default=0),
            "near_budget": sum(x["near_budget"] for x in locks),
            "over_budget": sum(x["over_budget"] for x in locks),
            "budget": locks[0]["budget"] if locks else None,
            "operations": _merge_operations(snapshots),
        },
        "outbox": (
            {"pending": sum(o["pending"] for o in outboxes), "oldest_age_s": max(ages) if ages else None}
            if outboxes
            else None
        ),
        "cache": {
            "hits": hits,
            "misses": misses,
            "hit_rate": _rate(hits, misses),
            "recent_hit_rate": _rate(recent_hits, recent_misses),
        },
    }


def build_overview(
    activity: DatabaseActivity, snapshots: list[dict[str, Any]] | None, slow_statement_ms: int
) -> dict[str, Any]:
    sessions = activity.sessions
    live = {a.application_name: asdict(a) for a in per_application(sessions)}
    published = snapshots or []
    names = [*PLATFORM_SERVICES, *sorted({s["service"] for s in published} - set(PLATFORM_SERVICES))]
    services = [
        _service_figures(name, live.get(name), [s for s in published if s.get("service") == name]) for name in names
    ]
    threshold_s = slow_statement_ms / 1000
    running = [b for b in sessions if b.state == "active" and (b.query_age_s or 0) >= threshold_s]
    recent = [
        {"service": s["service"], "instance": s.get("instance"), **entry}
        for s in published
        for entry in s.get("slow_statements", [])
    ]
    cache_hits = sum(s["cache"]["hits"] for s in services)
    cache_misses = sum(s["cache"]["misses"] for s in services)
    outboxes = [s["outbox"] for s in services if s["outbox"]]
    ages = [o["oldest_age_s"] for o in outboxes if o["oldest_age_s"] is not None]
    blocked = blocked_sessions(sessions)
    return {
        "database": activity.database,
        "full_visibility": activity.full_visibility,
        "snapshots_available": snapshots is not None,
        "lock_table": activity.capacity.as_dict(),
        "totals": {
            "sessions": len(sessions),
            "locks": sum(b.locks for b in sessions),
            "blocked_sessions": len(blocked),
            "outbox_pending": sum(o["pending"] for o in outboxes),
            "outbox_oldest_age_s": max(ages) if ages else None,
            "cache_hit_rate": _rate(cache_hits, cache_misses),
        },
        "lock_usage": list(live.values()),
        "services": services,
        "blocked_sessions": blocked,
        "idle_in_transaction": [_session(b) for b in select_idle_in_transaction(sessions)],
        "long_transactions": [_session(b) for b in select_long_running(sessions, threshold_s)],
        "slow_statements": {
            "threshold_ms": slow_statement_ms,
            "running": [_session(b) for b in sorted(running, key=lambda b: -(b.query_age_s or 0))],
            "recent": sorted(recent, key=lambda e: -e["at"])[:20],
        },
    }
