"""Process entry point: `python -m availability.entrypoints.server` (settings from AVAILABILITY_*)."""

from availability.bootstrap import start
from availability.config import AvailabilitySettings
from kit.server import serve_forever


def main() -> None:
    settings = AvailabilitySettings()
    serve_forever(lambda: start(settings, configure_logging=True), settings.shutdown_grace_s)


if __name__ == "__main__":
    main()
