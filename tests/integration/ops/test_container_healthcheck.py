"""The image's health check against real servers: a kit gRPC server is healthy while serving and
not once it has gone NOT_SERVING and stopped; the gateway's check is GET /healthz."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kit.config import ServiceSettings
from kit.paths import REPO_ROOT
from kit.server import start_server


def _healthcheck():
    path = REPO_ROOT / "deploy/docker/healthcheck.py"
    spec = importlib.util.spec_from_file_location("reserva_docker_healthcheck", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _healthcheck()


async def test_a_serving_grpc_service_is_healthy_and_a_stopped_one_is_not():
    running = await start_server(ServiceSettings(service_name="ops-health", grpc_port=0), [])
    try:
        assert await asyncio.to_thread(healthcheck.healthy, "booking", running.port)
    finally:
        await running.stop(0)
    assert not await asyncio.to_thread(healthcheck.healthy, "booking", running.port, 1.0)


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


def test_the_gateway_check_is_its_healthz_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        assert healthcheck.healthy("gateway", port)
    finally:
        server.shutdown()
        server.server_close()
    assert not healthcheck.healthy("gateway", port, 1.0)
