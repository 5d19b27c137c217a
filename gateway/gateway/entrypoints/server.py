"""`python -m gateway.entrypoints.server`: serve the REST API with uvicorn, print `READY <port>`
once listening, and shut down gracefully on SIGTERM (uvicorn drains in-flight requests)."""

from __future__ import annotations

import asyncio
import signal

from gateway.bootstrap import make_server, wait_until_listening
from gateway.config import GatewaySettings
from kit import event_loop
from kit.gc_tuning import tune_for_server
from kit.telemetry import setup_logging


def main() -> None:
    settings = GatewaySettings()
    setup_logging(settings.log_level, settings.log_json)

    # uvicorn re-raises the signal it handled once it has shut down; a no-op handler lets the
    # process exit 0 after a graceful SIGTERM instead of being killed by the default action.
    signal.signal(signal.SIGTERM, lambda *_: None)

    async def run() -> None:
        server = make_server(settings)
        task = asyncio.create_task(server.serve())
        port = await wait_until_listening(server, task)
        tune_for_server()
        print(f"READY {port}", flush=True)
        await task

    event_loop.run(run())


if __name__ == "__main__":
    main()
