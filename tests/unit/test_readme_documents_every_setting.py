"""The README's configuration tables name every setting of every service, so they cannot drift."""

import pytest

from availability.config import AvailabilitySettings
from booking.config import BookingSettings
from gateway.config import GatewaySettings
from kit.config import ServiceSettings
from kit.paths import REPO_ROOT
from notifications.config import NotificationsSettings
from payments.config import PaymentsSettings

README = (REPO_ROOT / "README.md").read_text()
SERVICES = [
    ("AVAILABILITY_", AvailabilitySettings),
    ("BOOKING_", BookingSettings),
    ("PAYMENTS_", PaymentsSettings),
    ("NOTIFICATIONS_", NotificationsSettings),
    ("GATEWAY_", GatewaySettings),
]


def test_every_common_setting_is_in_the_readme():
    missing = [n for n in ServiceSettings.model_fields if n != "service_name" and n.upper() not in README]
    assert missing == []


@pytest.mark.parametrize(("prefix", "settings"), SERVICES, ids=[p.strip("_").lower() for p, _ in SERVICES])
def test_every_service_setting_is_in_the_readme(prefix, settings):
    own = [n for n in settings.model_fields if n not in ServiceSettings.model_fields and n != "service_name"]
    missing = [n for n in own if f"`{prefix}{n.upper()}`" not in README]
    assert missing == []
