"""Runs the whole platform as processes: the four services and the gateway, each a
`python -m <package>.entrypoints.server` child that prints `READY <port>` once it serves. Used by
`reserva up` and by the end-to-end tests (which pass a unique database and Redis namespace)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from kit.paths import REPO_ROOT
from kit.provision import service_database_url

SERVICE_ORDER = [["availability", "payments", "notifications"], ["booking"], ["gateway"]]
ENV_PREFIX = {
    "availability": "AVAILABILITY",
    "booking": "BOOKING",
    "payments": "PAYMENTS",
    "notifications": "NOTIFICATIONS",
    "gateway": "GATEWAY",
}
DEFAULT_PORTS = {
    "availability": 50051,
    "booking": 50052,
    "payments": 50053,
    "notifications": 50054,
    "gateway": 8080,
}
# Where each process serves /metrics when METRICS_EXPORTER=prometheus (one machine, one port each).
DEFAULT_METRICS_PORTS = {
    "availability": 9461,
    "booking": 9462,
    "payments": 9463,
    "notifications": 9464,
    "gateway": 9465,
}


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen
    port: int | None = None
    output: list[str] = field(default_factory=list)


@dataclass
class Platform:
    admin_database_url: str
    database: str
    redis_url: str
    redis_namespace: str = "reserva"
    fixed_ports: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    children: dict[str, ChildProcess] = field(default_factory=dict)
    # The local mail catcher e-mail is delivered to, unless NOTIFICATIONS_SMTP_HOST points elsewhere.
    smtp_sink: object | None = None

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.children[name].port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.address('gateway')}"

    def _env(self, name: str) -> dict[str, str]:
        prefix = ENV_PREFIX[name]
        env = dict(os.environ)
        env.update(self.extra_env)
        port = DEFAULT_PORTS[name] if self.fixed_ports else 0
        if name in self.children and self.children[name].port:
            # A restarted child (start_one after kill) keeps its port: its peers were told that one.
            port = self.children[name].port
        env.update(
            {
                f"{prefix}_DATABASE_URL": service_database_url(self.admin_database_url, self.database, name),
                f"{prefix}_REDIS_URL": self.redis_url,
                f"{prefix}_REDIS_NAMESPACE": self.redis_namespace,
                f"{prefix}_GRPC_PORT": str(port),
                f"{prefix}_HTTP_PORT": str(port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        # Unless set (environment, extra_env): under METRICS_EXPORTER=prometheus each process its own.
        env.setdefault(f"{prefix}_METRICS_PORT", str(DEFAULT_METRICS_PORTS[name] if self.fixed_ports else 0))
        for peer in ("availability", "booking", "payments", "notifications"):
            if peer in self.children and self.children[peer].port:
                env[f"{prefix}_{peer.upper()}_ADDR"] = self.address(peer)
        return env

    def _spawn(self, name: str) -> ChildProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", f"{name}.entrypoints.server"],
            cwd=REPO_ROOT,
            env=self._env(name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        child = ChildProcess(name, process)
        ready = threading.Event()

        def pump() -> None:
            for line in process.stdout:
                if line.startswith("READY ") and child.port is None:
                    child.port = int(line.split()[1])
                    ready.set()
                child.output.append(line)
                del child.output[:-200]
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        child.ready = ready  # type: ignore[attr-defined]
        self.children[name] = child
        return child

    def _start_mail_catcher(self) -> None:
        if "NOTIFICATIONS_SMTP_HOST" in os.environ or "NOTIFICATIONS_SMTP_HOST" in self.extra_env:
            return
        from notifications.adapters.smtp_sink import start_smtp_sink

        mail_dir = REPO_ROOT / ".data" / "mail"
        mail_dir.mkdir(parents=True, exist_ok=True)
        port = 8025 if self.fixed_ports else 0
        try:
            self.smtp_sink = start_smtp_sink("127.0.0.1", port, str(mail_dir / f"{self.database}.mbox"))
        except OSError:  # 8025 taken (another platform): any free port will do
            self.smtp_sink = start_smtp_sink("127.0.0.1", 0, str(mail_dir / f"{self.database}.mbox"))
        self.extra_env.update(NOTIFICATIONS_SMTP_HOST="127.0.0.1", NOTIFICATIONS_SMTP_PORT=str(self.smtp_sink.port))

    def start(self, timeout_s: float = 60.0) -> None:
        self._start_mail_catcher()
        for group in SERVICE_ORDER:
            started = [self._spawn(name) for name in group]
            deadline = time.monotonic() + timeout_s
            for child in started:
                child.ready.wait(max(0.0, deadline - time.monotonic()))  # type: ignore[attr-defined]
                if child.port is None:
                    self.stop()
                    raise RuntimeError(f"{child.name} did not start:\n{''.join(child.output[-60:])}")

    def start_one(self, name: str, timeout_s: float = 60.0) -> None:
        """(Re)start one child, e.g. after a chaos test killed it."""
        child = self._spawn(name)
        child.ready.wait(timeout_s)  # type: ignore[attr-defined]
        if child.port is None:
            raise RuntimeError(f"{name} did not start:\n{''.join(child.output[-60:])}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        child = self.children[name]
        child.process.send_signal(sig)
        child.process.wait(10)

    def stop(self, grace_s: float = 10.0) -> None:
        for group in reversed(SERVICE_ORDER):
            for name in group:
                child = self.children.get(name)
                if child and child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            for name in group:
                child = self.children.get(name)
                if child:
                    try:
                        child.process.wait(grace_s)
                    except subprocess.TimeoutExpired:
                        child.process.kill()
        if self.smtp_sink is not None:
            self.smtp_sink.stop()
            self.smtp_sink = None
