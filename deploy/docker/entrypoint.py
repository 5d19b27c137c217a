"""The image's entry point: `entrypoint.py SERVICE | migrate SERVICE | locks ...`.

A service listens on all interfaces on its usual port (the one `reserva up` uses) unless the
environment says otherwise, so `docker run IMAGE booking` just works and the health check knows
where to ask. The process replaces this one (exec): signals reach the server directly."""

from __future__ import annotations

import os
import sys

SERVICES = ("availability", "booking", "payments", "notifications", "gateway")
DEFAULT_PORTS = {"availability": 50051, "booking": 50052, "payments": 50053, "notifications": 50054, "gateway": 8080}
USAGE = f"usage: entrypoint.py {{{'|'.join(SERVICES)}}} | migrate SERVICE | locks ARGS..."


def command_for(argv: list[str], environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment to exec for the container's arguments."""
    env = dict(environ)
    if len(argv) == 1 and argv[0] in SERVICES:
        service = argv[0]
        prefix = service.upper()
        if service == "gateway":
            env.setdefault("GATEWAY_HTTP_HOST", "0.0.0.0")
            env.setdefault("GATEWAY_HTTP_PORT", str(DEFAULT_PORTS[service]))
        else:
            env.setdefault(f"{prefix}_GRPC_HOST", "0.0.0.0")
            env.setdefault(f"{prefix}_GRPC_PORT", str(DEFAULT_PORTS[service]))
        return [sys.executable, "-m", f"{service}.entrypoints.server"], env
    if len(argv) == 2 and argv[0] == "migrate" and argv[1] in SERVICES:
        return [sys.executable, "-m", "kit.cli", "migrate", "--service", argv[1]], env
    if argv and argv[0] == "locks":
        return [sys.executable, "-m", "kit.cli", *argv], env
    raise SystemExit(USAGE)


def main() -> None:
    command, env = command_for(sys.argv[1:], dict(os.environ))
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
