"""Payments benchmark: `.venv/bin/python tests/benchmarks/payments_bench.py [--pairs N] [--refunds N]`.

In a throwaway database (created, migrated, dropped): an in-process payments server over real gRPC,
real PostgreSQL and Redis (outbox relay on, sandbox webhooks off), with
  1. authorize+capture on distinct payments by 32 concurrent callers;
  2. a refund storm: 32 concurrent callers refunding one hot captured payment.
Prints a Markdown table and writes tests/benchmarks/results/payments.json, with the lock probe's
readings (locks per transaction, from the share of transactions it measures as deployed) for each RPC."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import grpc
from benchlib import PRODUCTION_LOCK_PROBE_SAMPLE_RATE

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests/benchmarks/results/payments.json"
CONCURRENCY = 32


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


async def run_callers(total: int, work) -> tuple[list[float], dict[str, int], float]:
    """`total` calls of `work(i)` by CONCURRENCY callers; (latencies ms of successes, outcomes, seconds)."""
    latencies: list[float] = []
    outcomes: dict[str, int] = defaultdict(int)
    queue = iter(range(total))

    async def caller() -> None:
        for i in queue:
            started = time.perf_counter()
            try:
                await work(i)
                latencies.append((time.perf_counter() - started) * 1000)
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return latencies, dict(outcomes), time.perf_counter() - started


def lock_summary(readings) -> dict[str, dict]:
    by_operation: dict[str, list] = defaultdict(list)
    for r in readings:
        by_operation[f"{r.operation} ({r.kind})"].append(r)
    return {
        name: {
            "transactions": len(rs),
            "mean_relation_locks": round(statistics.mean(r.relation_locks for r in rs), 2),
            "max_relation_locks": max(r.relation_locks for r in rs),
            "max_total_locks": max(r.total_locks for r in rs),
            "max_advisory_locks": max(r.advisory_locks for r in rs),
        }
        for name, rs in sorted(by_operation.items())
    }


async def bench(pairs: int, refunds: int, probe: bool = True) -> dict:
    from kit import lock_probe
    from kit.cli import migrate_all
    from kit.gc_tuning import tune_for_server
    from kit.identity import SYSTEM
    from kit.infra import ensure_infrastructure
    from kit.provision import drop_database, service_database_url
    from payments.bootstrap import start
    from payments.config import PaymentsSettings
    from reserva.payments.v1 import payments_pb2 as pb
    from reserva.payments.v1 import payments_pb2_grpc
    from reserva.type.v1 import types_pb2

    infra = ensure_infrastructure()
    database = f"reserva_bench_payments_{uuid.uuid4().hex[:8]}"
    await migrate_all(infra.admin_database_url, database, services=["payments"])
    settings = PaymentsSettings(
        database_url=service_database_url(infra.admin_database_url, database, "payments"),
        redis_url=infra.redis_url,
        redis_namespace=f"bench_{uuid.uuid4().hex[:8]}",
        # PostgreSQL's default max_connections is 100 and the machine is shared: stay well below.
        db_pool_size=12,
        db_max_overflow=4,
        lock_probe_enabled=probe,
        # As deployed (deploy/base), like the other benchmarks: the probe measures a share of the
        # transactions (a measured one is a transaction of its own, never a lone statement, and
        # costs the probe's query); its readings give the locks per transaction.
        lock_probe_strict=False,
        lock_probe_sample_rate=PRODUCTION_LOCK_PROBE_SAMPLE_RATE,
        sandbox_webhooks_enabled=False,
        reconcile_interval_s=0,
        idempotency_sweep_interval_s=0,
        log_level="WARNING",
    )
    running = await start(settings)
    tune_for_server()  # as a service process does once started (kit.server)
    metadata = SYSTEM.to_metadata()
    results: dict = {"concurrency": CONCURRENCY, "lock_probe": probe}
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = payments_pb2_grpc.PaymentServiceStub(channel)

            def eur(amount: int) -> types_pb2.Money:
                return types_pb2.Money(amount_minor=amount, currency_code="EUR")

            async def authorize(amount: int = 10_000) -> pb.Payment:
                return await stub.AuthorizePayment(
                    pb.AuthorizePaymentRequest(
                        request_id=str(uuid.uuid4()), booking_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()),
                        amount=eur(amount), payment_method_token="tok_success", kind=pb.PAYMENT_KIND_FULL,
                    ),
                    metadata=metadata,
                )  # fmt: skip

            async def capture(payment_id: str) -> pb.Payment:
                return await stub.CapturePayment(
                    pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment_id), metadata=metadata
                )

            for _ in range(20):  # warm up connections and plans
                await capture((await authorize()).id)

            start_reading = lock_probe.READINGS.mark()

            async def pair(_: int) -> None:
                await capture((await authorize()).id)

            latencies, outcomes, seconds = await run_callers(pairs, pair)
            results["authorize_capture"] = {
                "pairs": pairs, "outcomes": outcomes, "seconds": round(seconds, 3),
                "pairs_per_s": round(outcomes.get("OK", 0) / seconds, 1),
                "p50_ms": round(percentile(latencies, 0.50), 2), "p95_ms": round(percentile(latencies, 0.95), 2),
                "p99_ms": round(percentile(latencies, 0.99), 2),
                "locks": lock_summary(lock_probe.READINGS.since(start_reading)),
            }  # fmt: skip

            hot = await authorize(refunds * 100)
            await capture(hot.id)
            start_reading = lock_probe.READINGS.mark()

            async def refund(_: int) -> None:
                await stub.RefundPayment(
                    pb.RefundPaymentRequest(request_id=str(uuid.uuid4()), payment_id=hot.id, amount=eur(100)),
                    metadata=metadata,
                )

            latencies, outcomes, seconds = await run_callers(refunds, refund)
            final = await stub.GetPayment(pb.GetPaymentRequest(id=hot.id), metadata=metadata)
            results["refund_storm_one_payment"] = {
                "refunds": refunds, "outcomes": outcomes, "seconds": round(seconds, 3),
                "refunds_per_s": round(outcomes.get("OK", 0) / seconds, 1),
                "p50_ms": round(percentile(latencies, 0.50), 2), "p95_ms": round(percentile(latencies, 0.95), 2),
                "p99_ms": round(percentile(latencies, 0.99), 2),
                "final_captured_minor": final.captured_amount.amount_minor,
                "final_refunded_minor": final.refunded_amount.amount_minor,
                "invariant_holds": final.refunded_amount.amount_minor <= final.captured_amount.amount_minor
                and final.refunded_amount.amount_minor == 100 * outcomes.get("OK", 0),
                "locks": lock_summary(lock_probe.READINGS.since(start_reading)),
            }  # fmt: skip
    finally:
        await running.stop(0)
        await drop_database(infra.admin_database_url, database)
    return results


def markdown(results: dict) -> str:
    ac, rs = results["authorize_capture"], results["refund_storm_one_payment"]
    lines = [
        f"| scenario ({results['concurrency']} callers) | ops | ok/s | p50 ms | p95 ms | p99 ms | outcomes |",
        "|---|---|---|---|---|---|---|",
        f"| authorize+capture, distinct payments | {ac['pairs']} | {ac['pairs_per_s']} | {ac['p50_ms']} | "
        f"{ac['p95_ms']} | {ac['p99_ms']} | {ac['outcomes']} |",
        f"| refund storm, one hot payment | {rs['refunds']} | {rs['refunds_per_s']} | {rs['p50_ms']} | "
        f"{rs['p95_ms']} | {rs['p99_ms']} | {rs['outcomes']} |",
        "",
        f"Hot payment after the storm: captured {rs['final_captured_minor']}, refunded "
        f"{rs['final_refunded_minor']}, invariant holds: {rs['invariant_holds']}",
        "",
        "| transaction | count | mean relation locks | max relation locks | max total | max advisory |",
        "|---|---|---|---|---|---|",
    ]
    merged: dict[str, dict] = {}
    for scenario in (ac, rs):
        for name, s in scenario["locks"].items():
            merged.setdefault(name, s)
    for name, s in merged.items() if results["lock_probe"] else ():
        lines.append(
            f"| {name} | {s['transactions']} | {s['mean_relation_locks']} | {s['max_relation_locks']} | "
            f"{s['max_total_locks']} | {s['max_advisory_locks']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--refunds", type=int, default=1000)
    parser.add_argument("--no-probe", action="store_true", help="measure without the lock probe's query")
    args = parser.parse_args()
    from kit import event_loop

    results = event_loop.run(bench(args.pairs, args.refunds, probe=not args.no_probe))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
