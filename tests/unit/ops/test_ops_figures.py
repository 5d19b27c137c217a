"""The operator dashboard's arithmetic, without I/O: what one process's snapshot says about its lock
probe readings and cache, and how the overview merges the live sessions with every snapshot."""

from __future__ import annotations

from gateway.service_layer.ops import DatabaseActivity, build_overview
from kit.lock_probe import READINGS, LockBudget, LockReading
from kit.locks_cli import Backend, LockCapacity
from kit.ops_snapshot import summarize_cache, summarize_locks, summarize_slow_statements, write_lock_histogram


def reading(service: str, operation: str, total: int, relation: int | None = None, advisory=0, wrote=False):
    relation = total if relation is None else relation
    return LockReading(service, operation, relation, advisory, 0, total, wrote)


def backend(pid: int, app: str, locks=0, state="idle", blocked_by=(), query_age_s=None, state_age_s=1.0) -> Backend:
    return Backend(
        pid=pid, usename="reserva_booking", application_name=app, state=state, backend_start=None,
        xact_start=None, xact_age_s=None, query_age_s=query_age_s, state_age_s=state_age_s,
        wait_event_type="Lock" if blocked_by else None, wait_event=None, query=f"query of {pid}", locks=locks,
        relation_locks=locks, fast_path_locks=locks, slow_path_locks=0, waiting_locks=1 if blocked_by else 0,
        waiting_for="AccessShareLock on relation booking.t" if blocked_by else None, blocked_by=tuple(blocked_by),
    )  # fmt: skip


def snapshot(service: str, instance: str, pending=None, oldest=None, hits=0, misses=0, age_s=1.0, operations=()):
    return {
        "service": service,
        "instance": instance,
        "age_s": age_s,
        "outbox": None if pending is None else {"pending": pending, "oldest_age_s": oldest},
        "cache": {"hits": hits, "misses": misses, "errors": 0, "recent_hits": hits, "recent_misses": misses},
        "locks": {
            "transactions": sum(o["transactions"] for o in operations),
            "max_locks": max((o["max_locks"] for o in operations), default=0),
            "max_relation_locks": max((o["max_relation_locks"] for o in operations), default=0),
            "near_budget": 0,
            "over_budget": 0,
            "budget": {"read": 10, "write_relations": 16, "write_advisory": 1},
            "operations": list(operations),
        },
        "slow_statements": [],
    }


def operation(name: str, kind: str, transactions: int, max_locks: int) -> dict:
    return {
        "operation": name, "kind": kind, "transactions": transactions, "max_locks": max_locks,
        "max_relation_locks": max_locks, "max_advisory_locks": 0, "last_locks": max_locks,
    }  # fmt: skip


CAPACITY = LockCapacity(64, 100, 0, fast_path_locks=7, shared_table_locks=3)


def test_lock_figures_are_per_operation_of_one_service_with_budget_counts():
    readings = [
        reading("booking", "CreateBooking", 12, wrote=True),
        reading("booking", "CreateBooking", 14, wrote=True),  # 14 >= 80 % of 16: near
        reading("booking", "GetBooking", 4),
        reading("booking", "ListBookings", 11),  # a read over 10: over
        reading("availability", "HoldSlots", 15, advisory=1, wrote=True),
    ]
    figures = summarize_locks(readings, "booking", LockBudget())
    assert figures["transactions"] == 4 and figures["max_locks"] == 14
    assert figures["near_budget"] == 1 and figures["over_budget"] == 1
    ops = {(o["operation"], o["kind"]): o for o in figures["operations"]}
    assert set(ops) == {("CreateBooking", "write"), ("GetBooking", "read"), ("ListBookings", "read")}
    assert ops[("CreateBooking", "write")]["transactions"] == 2
    assert ops[("CreateBooking", "write")]["max_locks"] == 14 and ops[("CreateBooking", "write")]["last_locks"] == 14
    assert [o["operation"] for o in figures["operations"]] == ["CreateBooking", "ListBookings", "GetBooking"]


def test_the_cache_hit_rate_of_the_last_interval_counts_only_what_happened_since():
    first = summarize_cache({"hit": 3, "miss": 1, "error": 0}, None)
    assert first["hit_rate"] == 0.75 and first["recent_hit_rate"] == 0.75
    later = summarize_cache({"hit": 4, "miss": 5, "error": 1}, {"hit": 3, "miss": 1, "error": 0})
    assert (later["recent_hits"], later["recent_misses"]) == (1, 4)
    assert later["recent_hit_rate"] == 0.2 and later["hit_rate"] == round(4 / 9, 4)
    idle = summarize_cache({"hit": 4, "miss": 5, "error": 1}, {"hit": 4, "miss": 5, "error": 1})
    assert idle["recent_hit_rate"] is None


def test_slow_statements_are_the_services_own_newest_first():
    entries = [
        ("booking", 250.0, "SELECT 1", 10.0),
        ("payments", 900.0, "SELECT 2", 11.0),
        ("booking", 300.0, "SELECT 3", 12.0),
    ]
    assert [s["statement"] for s in summarize_slow_statements(entries, "booking")] == ["SELECT 3", "SELECT 1"]


def test_the_overview_merges_live_sessions_with_every_instances_snapshot():
    sessions = [
        backend(10, "booking", locks=3, state="idle in transaction", state_age_s=40.0),
        backend(11, "booking", locks=1, state="active", blocked_by=(10,), query_age_s=2.0, state_age_s=2.0),
        backend(12, "availability", locks=2, state="active", blocked_by=(99,), query_age_s=0.05, state_age_s=0.05),
        backend(13, "psql", locks=0),
    ]
    snapshots = [
        snapshot("booking", "b1", pending=2, oldest=4.0, hits=3, misses=1,
                 operations=[operation("CreateBooking", "write", 5, 12)]),
        snapshot("booking", "b2", pending=1, oldest=9.0, hits=1, misses=3, age_s=0.5,
                 operations=[operation("CreateBooking", "write", 2, 13), operation("GetBooking", "read", 4, 3)]),
        snapshot("gateway", "g1", hits=0, misses=0),
        snapshot("search-indexer", "s1"),
    ]  # fmt: skip
    body = build_overview(DatabaseActivity("reserva", CAPACITY, sessions, True), snapshots, slow_statement_ms=200)

    figures = {s["service"]: s for s in body["services"]}
    assert list(figures) == ["availability", "booking", "payments", "notifications", "gateway", "search-indexer"]
    booking = figures["booking"]
    assert booking["instances"] == 2 and booking["snapshot_age_s"] == 0.5
    assert booking["live_locks"]["locks"] == 4 and booking["live_locks"]["waiting_backends"] == 1
    assert booking["outbox"] == {"pending": 3, "oldest_age_s": 9.0}
    assert booking["cache"]["hits"] == 4 and booking["cache"]["hit_rate"] == 0.5
    assert booking["lock_probe"]["transactions"] == 11 and booking["lock_probe"]["max_locks"] == 13
    merged = {o["operation"]: o for o in booking["lock_probe"]["operations"]}
    assert merged["CreateBooking"]["transactions"] == 7 and merged["CreateBooking"]["max_locks"] == 13
    assert figures["payments"]["instances"] == 0 and figures["payments"]["outbox"] is None
    assert figures["payments"]["live_locks"]["locks"] == 0 and figures["payments"]["cache"]["hit_rate"] is None

    assert body["totals"] == {
        "sessions": 4,
        "locks": 6,
        "blocked_sessions": 2,
        "outbox_pending": 3,
        "outbox_oldest_age_s": 9.0,
        "cache_hit_rate": 0.5,
    }
    blocked = {b["pid"]: b for b in body["blocked_sessions"]}
    assert blocked[11]["blockers"][0]["pid"] == 10 and blocked[11]["blockers"][0]["state"] == "idle in transaction"
    assert blocked[12]["blockers"] == [
        {"pid": 99, "application_name": "(another database)", "state": None, "query": ""}
    ]
    assert [s["pid"] for s in body["slow_statements"]["running"]] == [11]  # 2 s >= 200 ms; 50 ms is not
    assert [s["pid"] for s in body["idle_in_transaction"]] == [10]
    assert body["lock_table"]["capacity"] == 6400 and body["snapshots_available"] is True


def test_without_redis_the_overview_still_shows_the_database():
    sessions = [backend(10, "booking", locks=3)]
    body = build_overview(DatabaseActivity("reserva", CAPACITY, sessions, False), None, slow_statement_ms=200)
    assert body["snapshots_available"] is False and body["full_visibility"] is False
    assert {s["service"]: s["live_locks"]["locks"] for s in body["services"]}["booking"] == 3
    assert all(s["instances"] == 0 for s in body["services"])


def test_the_write_lock_histogram_is_the_services_own_since_the_process_started():
    service = "histogram-test"  # a name of its own: READINGS is the process's
    for relation in (5, 5, 9):
        READINGS.append(LockReading(service, "HoldSlots", relation, 1, 0, relation + 1, wrote=True))
    READINGS.append(LockReading(service, "GetPlace", 3, 0, 0, 3, wrote=False))
    READINGS.append(LockReading("other-service", "HoldSlots", 12, 1, 0, 13, wrote=True))
    assert write_lock_histogram(service) == {"6": 2, "10": 1}
