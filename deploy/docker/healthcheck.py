"""The image's HEALTHCHECK. It finds what PID 1 runs (the entry point execs the server), then asks
a service over grpc.health.v1 and the gateway over GET /healthz. Exit 0 healthy, 1 not.
Kubernetes does not use it (the manifests' probes do the same); `docker run` and compose do."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

SERVICES = ("availability", "booking", "payments", "notifications", "gateway")
DEFAULT_PORTS = {"availability": 50051, "booking": 50052, "payments": 50053, "notifications": 50054, "gateway": 8080}


def service_of(cmdline: list[str]) -> str | None:
    """`python -m booking.entrypoints.server` -> "booking"; None for anything else (a migration)."""
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-m" and cmdline[i + 1].endswith(".entrypoints.server"):
            name = cmdline[i + 1].split(".")[0]
            return name if name in SERVICES else None
    return None


def port_of(service: str, environ: dict[str, str]) -> int:
    key = "GATEWAY_HTTP_PORT" if service == "gateway" else f"{service.upper()}_GRPC_PORT"
    return int(environ.get(key) or DEFAULT_PORTS[service])


def healthy(service: str, port: int, timeout_s: float = 3.0) -> bool:
    if service == "gateway":
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout_s) as response:
                return response.status == 200
        except OSError:
            return False
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def main() -> int:
    cmdline = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    service = service_of([part for part in cmdline if part])
    if service is None:
        return 0  # a migration Job or the lock tools: nothing to ask
    return 0 if healthy(service, port_of(service, dict(os.environ))) else 1


if __name__ == "__main__":
    sys.exit(main())
