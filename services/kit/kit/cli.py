"""The project's command: `./reserva up | test | migrate | protos | bench | locks`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kit.paths import LOCK_REPORT_DIR, REPO_ROOT, SCHEMAS


def _database_name() -> str:
    return os.environ.get("RESERVA_DATABASE_NAME", "reserva")


async def migrate_all(admin_url: str, database: str, down: bool = False, services=None) -> None:
    from kit import migrations
    from kit.provision import provision, service_database_url

    await provision(admin_url, database)
    for service in services or SCHEMAS:
        url = service_database_url(admin_url, database, service)
        if down:
            await migrations.downgrade(service, url)
        else:
            await migrations.upgrade(service, url)


def cmd_protos(args: argparse.Namespace) -> int:
    from kit import protogen

    return protogen.main(["--check"] if args.check else [])


def cmd_migrate(args: argparse.Namespace) -> int:
    from kit.infra import ensure_postgres

    # Migrations need no Redis: a Kubernetes migration Job gets only the database's address.
    admin_url, _embedded = ensure_postgres()
    asyncio.run(migrate_all(admin_url, _database_name(), down=args.down, services=args.service))
    which = ", ".join(args.service) if args.service else "every service"
    print(f"migrations of {which}:", "downgraded to base" if args.down else "at head")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from kit.infra import ensure_infrastructure
    from kit.platform import Platform

    infra = ensure_infrastructure()
    database = _database_name()
    print(f"PostgreSQL: {infra.admin_database_url}\nRedis:      {infra.redis_url}")
    asyncio.run(migrate_all(infra.admin_database_url, database))
    platform = Platform(
        infra.admin_database_url,
        database,
        infra.redis_url,
        redis_namespace=os.environ.get("RESERVA_REDIS_NAMESPACE", "reserva"),
        # RESERVA_DYNAMIC_PORTS=1 picks free ports (a second platform beside a running one, the smoke test).
        fixed_ports=os.environ.get("RESERVA_DYNAMIC_PORTS") != "1",
    )
    platform.start()
    try:
        from gateway.demo import load_demo_data

        print(load_demo_data(platform.gateway_url))
    except ImportError:
        print("(no demo data loader yet)")
    print("\nReserva is up:", flush=True)
    for name, child in platform.children.items():
        kind = "http" if name == "gateway" else "grpc"
        print(f"  {name:<14} {kind}://127.0.0.1:{child.port}")
    if platform.smtp_sink is not None:
        print(f"  mail catcher   smtp://127.0.0.1:{platform.smtp_sink.port} -> {platform.smtp_sink.mbox_path}")
    print(f"  API docs       {platform.gateway_url}/docs\nCtrl-C stops everything.", flush=True)
    try:
        while all(c.process.poll() is None for c in platform.children.values()):
            time.sleep(0.5)
        print("a process exited; stopping the platform")
        return 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        platform.stop()


BROWSER_FILES = ("/usr/bin/chromium", "/usr/bin/chromedriver")


def ensure_browser() -> None:
    """The operator dashboard's e2e test drives Debian's chromium through its chromedriver: install
    both with apt-get when they are missing and this runs as root (else the test says what to do)."""
    if all(os.path.exists(path) for path in BROWSER_FILES):
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        print("reserva test: chromium is missing (apt-get install chromium chromium-driver)", file=sys.stderr)
        return
    print("reserva test: installing chromium and chromium-driver (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    if subprocess.call(["apt-get", "update", "-qq"], **quiet) == 0:
        subprocess.call(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], **quiet)


def cmd_test(args: argparse.Namespace) -> int:
    """Two phases: everything in parallel, then the tests that load the whole machine (the
    contention proof, chaos, the minimum-lock cluster run) one at a time, so that they measure the
    platform and not the other tests. With arguments, plain pytest with those arguments."""
    from kit import protogen

    if protogen.stale_files():
        protogen.generate()  # a fresh clone has them; this only helps a developer who edited a proto
    ensure_browser()
    pytest = [sys.executable, "-m", "pytest"]
    if args.pytest_args:
        return subprocess.call([*pytest, *args.pytest_args], cwd=REPO_ROOT)
    workers = os.environ.get("RESERVA_TEST_WORKERS", "auto")
    phases = [
        ("parallel", [*pytest, "-n", workers, "--dist", "loadgroup", "-m", "not serial"]),
        ("serial (whole-machine tests)", [*pytest, "-p", "no:xdist", "-m", "serial"]),
    ]
    failed = []
    for name, command in phases:
        print(f"\n==== reserva test: {name} ====", flush=True)
        code = subprocess.call(command, cwd=REPO_ROOT)
        if code not in (0, 5):  # 5: nothing collected in this phase
            failed.append(name)
        elif name == "parallel" and (missing := unmeasured_rpcs(LOCK_REPORT_DIR)):
            # Its report is gone once the next phase starts: the whole suite is checked here.
            print(f"reserva test: no test measured the locks of {', '.join(missing)}", flush=True)
            failed.append("every RPC within the lock budget")
    print(f"\n==== reserva test: {'FAILED in ' + ', '.join(failed) if failed else 'all phases passed'} ====")
    return 1 if failed else 0


GRPC_SERVICES = ("availability", "booking", "payments", "notifications")


def unmeasured_rpcs(report_dir: Path) -> list[str]:
    """The RPCs ("service.Method", from the services' descriptors) of which no transaction was
    measured by the lock probe in the test run whose per-process reports lie in `report_dir`: the
    budget is proven for an RPC only if some test ran it (the strict probe fails it past the budget)."""
    measured = {key.split(" (", 1)[0] for path in report_dir.glob("*.json") for key in json.loads(path.read_text())}
    missing = []
    for service in GRPC_SERVICES:
        module = importlib.import_module(f"reserva.{service}.v1.{service}_pb2")
        for descriptor in module.DESCRIPTOR.services_by_name.values():
            missing += [f"{service}.{m.name}" for m in descriptor.methods if f"{service}.{m.name}" not in measured]
    return missing


def cmd_bench(args: argparse.Namespace) -> int:
    command = [sys.executable, str(REPO_ROOT / "tests/benchmarks/run.py"), *args.bench_args]
    return subprocess.call(command, cwd=REPO_ROOT)


def cmd_locks(args: argparse.Namespace) -> int:
    from kit.locks_cli import main

    return main(args.locks_args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reserva")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="bring the whole platform up (infra, migrations, services, gateway, demo data)")
    p = sub.add_parser("test", help="run the whole test suite")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("migrate", help="run every service's migrations (explicitly; never at start)")
    p.add_argument("--down", action="store_true", help="downgrade every service to base")
    p.add_argument(
        "--service", action="append", choices=list(SCHEMAS), help="only this service (repeatable; default all)"
    )
    p = sub.add_parser("protos", help="generate Python code and stubs from protos/")
    p.add_argument("--check", action="store_true", help="fail if the generated code is stale")
    p = sub.add_parser("bench", help="run the benchmarks and print figures")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("locks", help="operator tools for lock emergencies")
    p.add_argument("locks_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    handler = {
        "up": cmd_up, "test": cmd_test, "migrate": cmd_migrate, "protos": cmd_protos,
        "bench": cmd_bench, "locks": cmd_locks,
    }[args.command]  # fmt: skip
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
