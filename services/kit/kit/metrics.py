"""Metrics of the services' background workers (the RPC, cache, outbox and lock figures live beside
the code they measure: kit.interceptors, kit.grpc_client, kit.cache, kit.outbox, kit.lock_probe)."""

from __future__ import annotations

from opentelemetry import metrics

_meter = metrics.get_meter("reserva.kit.workers")
_sweeper_batches = _meter.create_histogram(
    "reserva.sweeper.batch_size", unit="{row}", description="rows one sweeper batch handled (0: nothing was due)"
)


def record_sweep(service: str, sweeper: str, rows: int) -> None:
    _sweeper_batches.record(rows, {"service": service, "sweeper": sweeper})
