"""`python -m payments.entrypoints.server`: settings from PAYMENTS_* variables, prints READY <port>."""

from __future__ import annotations

from kit.server import serve_forever
from payments.bootstrap import start
from payments.config import PaymentsSettings


def main() -> None:
    settings = PaymentsSettings()
    serve_forever(lambda: start(settings, configure_logging=True), settings.shutdown_grace_s)


if __name__ == "__main__":
    main()
