"""The README's first command, run as a user would: the whole platform comes up (migrations, four
services, gateway, demo data), the gateway reports every service SERVING, and Ctrl-C stops it all."""

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from kit.paths import REPO_ROOT

pytestmark = pytest.mark.xdist_group("platform_smoke")


async def test_reserva_up_brings_every_service_up_and_stops_on_ctrl_c(infra):
    from kit.provision import drop_database

    database = f"reserva_smoke_{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        RESERVA_DATABASE_NAME=database,
        RESERVA_DYNAMIC_PORTS="1",
        RESERVA_REDIS_NAMESPACE=f"smoke_{uuid.uuid4().hex[:6]}",
        RESERVA_ADMIN_DATABASE_URL=infra.admin_database_url,
        RESERVA_REDIS_URL=infra.redis_url,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kit.cli", "up"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C's SIGINT handled as in a terminal even when the suite itself was started in the
        # background of a script, which starts it with SIGINT ignored (a disposition children inherit).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        gateway = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            match = re.search(r"gateway\s+http://(\S+)", line)
            if match:
                gateway = f"http://{match.group(1)}"
            if "Ctrl-C stops everything" in line:
                break
        assert gateway, "the platform did not come up:\n" + "".join(output[-80:])
        async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
            health = (await client.get("/v1/health")).json()
        statuses = {name: state for name, state in health["services"].items()}
        assert statuses == {
            "availability": "SERVING",
            "booking": "SERVING",
            "payments": "SERVING",
            "notifications": "SERVING",
        }
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await drop_database(infra.admin_database_url, database)
