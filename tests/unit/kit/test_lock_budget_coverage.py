"""`reserva test` fails when the suite leaves an RPC unmeasured by the lock probe: the check reads
the per-process lock reports the test run writes and the services' own descriptors."""

import json

from kit.cli import unmeasured_rpcs
from reserva.payments.v1 import payments_pb2


def _report(folder, name: str, operations: list[str]) -> None:
    figures = {f"{op} ({kind})": {"count": 1} for op in operations for kind in ("read", "write")}
    (folder / f"{name}.json").write_text(json.dumps(figures))


def test_every_rpc_of_every_service_is_listed_until_some_test_process_measured_it(tmp_path):
    missing = unmeasured_rpcs(tmp_path)
    assert {"availability.HoldSlots", "booking.CreateBooking", "payments.CapturePayment"} <= set(missing)
    assert any(rpc.startswith("notifications.") for rpc in missing)

    payments = [f"payments.{m.name}" for m in payments_pb2.DESCRIPTOR.services_by_name["PaymentService"].methods]
    _report(tmp_path, "gw0", payments[:3] + ["payments.outbox_relay"])
    _report(tmp_path, "gw1", payments[3:])
    left = unmeasured_rpcs(tmp_path)
    assert not [rpc for rpc in left if rpc.startswith("payments.")]
    assert len(left) == len(missing) - len(payments)
