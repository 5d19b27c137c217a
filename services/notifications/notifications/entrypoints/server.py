"""Process entry point: `python -m notifications.entrypoints.server` (settings from NOTIFICATIONS_*)."""

from __future__ import annotations

from kit.telemetry import setup_logging
from notifications.bootstrap import start
from notifications.config import NotificationsSettings


def main() -> None:
    settings = NotificationsSettings()
    setup_logging(settings.log_level, settings.log_json)
    from kit.server import serve_forever

    serve_forever(lambda: start(settings), settings.shutdown_grace_s)


if __name__ == "__main__":
    main()
