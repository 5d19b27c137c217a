from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = REPO_ROOT / ".data"
# The lock probe's figures of a test run: one JSON file per test process (tests/conftest.py).
LOCK_REPORT_DIR = DATA_DIR / "lock-report"

# service name -> (schema, login role, migrations folder)
SCHEMAS = {
    "availability": ("availability", "reserva_availability", REPO_ROOT / "services/availability/migrations"),
    "booking": ("booking", "reserva_booking", REPO_ROOT / "services/booking/migrations"),
    "payments": ("payments", "reserva_payments", REPO_ROOT / "services/payments/migrations"),
    "notifications": (
        "notifications",
        "reserva_notifications",
        REPO_ROOT / "services/notifications/migrations",
    ),
    "gateway": ("identity", "reserva_gateway", REPO_ROOT / "gateway/migrations"),
}
