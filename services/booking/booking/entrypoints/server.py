"""`python -m booking.entrypoints.server`: serve until SIGTERM; prints READY <port> once serving."""

from __future__ import annotations

from booking.bootstrap import start
from booking.config import BookingSettings
from kit.server import serve_forever


def main() -> None:
    settings = BookingSettings()
    serve_forever(lambda: start(settings, configure_logging=True), settings.shutdown_grace_s)


if __name__ == "__main__":
    main()
