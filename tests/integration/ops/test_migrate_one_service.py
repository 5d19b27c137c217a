"""`reserva migrate --service NAME`, what each Kubernetes migration Job runs: it provisions the
database and migrates that one service only, with nothing but the database's address."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import asyncpg

from kit.paths import REPO_ROOT
from kit.provision import admin_dsn, drop_database


async def test_migrate_with_one_service_migrates_that_service_alone(infra):
    name = f"reserva_mig1_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RESERVA_ADMIN_DATABASE_URL": infra.admin_database_url, "RESERVA_DATABASE_NAME": name}
    env.pop("RESERVA_REDIS_URL", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kit.cli", "migrate", "--service", "notifications"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        assert "migrations of notifications: at head" in done.stdout
        conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, name))
        try:
            versioned = await conn.fetch(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'"
            )
        finally:
            await conn.close()
        assert [r["table_schema"] for r in versioned] == ["notifications"]
    finally:
        await drop_database(infra.admin_database_url, name)


def test_migrate_refuses_an_unknown_service():
    done = subprocess.run(
        [sys.executable, "-m", "kit.cli", "migrate", "--service", "inventory"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid choice: 'inventory'" in done.stderr
