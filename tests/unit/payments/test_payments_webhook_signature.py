"""The sandbox's webhook signatures: valid, tampered, wrong secret, stale."""

from datetime import UTC, datetime, timedelta

import pytest

from payments.adapters.sandbox_processor import SandboxWebhooks, sign
from payments.domain.errors import InvalidWebhookSignature

NOW = datetime(2030, 1, 1, tzinfo=UTC)
BODY = b'{"id": "evt_1", "type": "charge.authorized", "data": {"object": {"idempotency_key": "k"}}}'


def test_a_valid_signature_yields_the_event():
    event = SandboxWebhooks("s").verify_and_parse(BODY, sign("s", BODY, int(NOW.timestamp())), NOW)
    assert (event.event_id, event.event_type, event.charge_key) == ("evt_1", "charge.authorized", "k")


@pytest.mark.parametrize(
    "signature",
    [
        sign("other", BODY, int(NOW.timestamp())),
        sign("s", BODY + b" ", int(NOW.timestamp())),
        sign("s", BODY, int((NOW - timedelta(minutes=10)).timestamp())),
        "t=1",
        "",
    ],
)
def test_bad_signatures_are_refused(signature):
    with pytest.raises(InvalidWebhookSignature):
        SandboxWebhooks("s").verify_and_parse(BODY, signature, NOW)
