"""Pure rules of the notifications domain: switches, quiet hours, planning, retries, routing,
reminders, templates and event decoding."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import any_pb2

from notifications.adapters.event_codec import decode
from notifications.adapters.templates import JinjaRenderer
from notifications.domain.errors import EventRejected, InvalidEmail, InvalidPhone, InvalidQuietHours
from notifications.domain.model import (
    Channel,
    ChannelSwitch,
    DeliveryResult,
    IncomingEvent,
    Preferences,
    QuietHours,
    Rendered,
    RetryPolicy,
    Status,
    reminders_for,
)
from notifications.domain.planning import plan_notifications
from notifications.domain.routing import recipients
from notifications.domain.validation import checked_phone, normalized_email
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.events.v1 import envelope_pb2
from reserva.payments.v1 import events_pb2 as payment_events

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def _ids():
    counter = iter(range(1000))
    return lambda: f"id-{next(counter)}"


def test_a_specific_switch_beats_the_wildcard_which_beats_the_default():
    prefs = Preferences(
        "u",
        switches=[
            ChannelSwitch("*", Channel.EMAIL, False),
            ChannelSwitch("booking.confirmed", Channel.EMAIL, True),
        ],
    )
    assert prefs.channel_enabled("booking.confirmed", Channel.EMAIL)
    assert not prefs.channel_enabled("booking.cancelled", Channel.EMAIL)
    assert not prefs.channel_enabled("booking.cancelled", Channel.SMS)  # default off
    assert Preferences("u").channel_enabled("x", Channel.EMAIL)  # default on


def test_in_app_cannot_be_switched_off():
    prefs = Preferences("u", switches=[ChannelSwitch("*", Channel.IN_APP, False)])
    assert prefs.channel_enabled("booking.confirmed", Channel.IN_APP)


@pytest.mark.parametrize(
    ("start", "end", "minute", "inside"),
    [
        (22 * 60, 7 * 60, 23 * 60, True),
        (22 * 60, 7 * 60, 6 * 60, True),
        (22 * 60, 7 * 60, 12 * 60, False),
        (9 * 60, 17 * 60, 9 * 60, True),
        (9 * 60, 17 * 60, 17 * 60, False),
        (8 * 60, 8 * 60, 8 * 60, False),
    ],
)
def test_quiet_hours_windows_may_wrap_past_midnight(start, end, minute, inside):
    assert QuietHours(start, end).contains(minute) is inside


def test_quiet_hours_end_is_computed_in_the_users_zone_across_midnight():
    zone = ZoneInfo("Europe/Paris")
    at_23h_paris = datetime(2025, 3, 10, 23, 0, tzinfo=zone).astimezone(UTC)
    end = QuietHours(22 * 60, 7 * 60).end_after(at_23h_paris, zone)
    assert end == datetime(2025, 3, 11, 7, 0, tzinfo=zone).astimezone(UTC)
    assert QuietHours(22 * 60, 7 * 60).end_after(datetime(2025, 3, 10, 12, 0, tzinfo=zone), zone) is None


def test_quiet_hours_reject_impossible_times():
    with pytest.raises(InvalidQuietHours):
        QuietHours(24 * 60, 0)


def _render(channel, prefs):
    return Rendered("Subject", "Body", "<p>Body</p>")


def test_planning_records_in_app_as_sent_and_a_missing_address_as_failed():
    notes = plan_notifications(
        event_id="e", event_type="booking.confirmed", prefs=Preferences("u"), render=_render, now=NOW, new_id=_ids()
    )
    by_channel = {n.channel: n for n in notes}
    assert set(by_channel) == {Channel.EMAIL, Channel.IN_APP}
    assert by_channel[Channel.IN_APP].status is Status.SENT
    assert by_channel[Channel.EMAIL].status is Status.FAILED
    assert by_channel[Channel.EMAIL].failure_reason == "no email address"


def test_planning_defers_email_and_sms_in_quiet_hours_but_not_webhooks():
    prefs = Preferences(
        "u",
        email="a@example.com",
        phone="+33612345678",
        webhook_url="https://h.example/x",
        quiet_hours=QuietHours(11 * 60, 13 * 60),
        switches=[ChannelSwitch("*", Channel.SMS, True), ChannelSwitch("*", Channel.WEBHOOK, True)],
    )
    notes = {
        n.channel: n
        for n in plan_notifications(event_id="e", event_type="t", prefs=prefs, render=_render, now=NOW, new_id=_ids())
    }
    assert notes[Channel.EMAIL].status is Status.DEFERRED
    assert notes[Channel.EMAIL].send_after == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert notes[Channel.SMS].status is Status.DEFERRED
    assert notes[Channel.WEBHOOK].status is Status.QUEUED and notes[Channel.WEBHOOK].send_after == NOW
    assert notes[Channel.SMS].subject == "" and notes[Channel.EMAIL].html == "<p>Body</p>"


def test_retry_delays_grow_exponentially_with_jitter_and_are_capped():
    policy = RetryPolicy(max_attempts=5, base_s=10, cap_s=60)
    assert policy.delay(1, rand=1.0) == timedelta(seconds=10)
    assert policy.delay(1, rand=0.0) == timedelta(seconds=5)
    assert policy.delay(3, rand=1.0) == timedelta(seconds=40)
    assert policy.delay(9, rand=1.0) == timedelta(seconds=60)


def test_a_transient_failure_is_deferred_until_the_last_attempt_and_a_permanent_one_fails_at_once():
    policy = RetryPolicy(max_attempts=3, base_s=1, cap_s=10)
    transient, permanent = DeliveryResult(False, "smtp_unavailable"), DeliveryResult(False, "x", permanent=True)
    assert policy.after_failure(1, transient, NOW)[0] is Status.DEFERRED
    assert policy.after_failure(3, transient, NOW) == (Status.FAILED, None)
    assert policy.after_failure(1, permanent, NOW) == (Status.FAILED, None)


def _event(event_type, participants):
    return IncomingEvent("e", event_type, "a", NOW, participants, {})


def test_recipients_follow_the_audience_of_each_event_type_once_each():
    both = recipients(_event("booking.confirmed", {"client": "c", "host": "h"}), [])
    assert [(r.user_id, r.role) for r in both] == [("c", "client"), ("h", "host")]
    assert recipients(_event("calendar.changed", {}), ["a"]) == []
    with_agents = recipients(_event("payment.failed", {"client": "c"}), ["a1", "c"])
    assert [(r.user_id, r.role) for r in with_agents] == [("c", "client"), ("a1", "agent")]


def test_reminders_skip_offsets_already_past():
    start = NOW + timedelta(hours=5)
    planned = reminders_for("b", "u", "p", start, [86400, 3600], NOW, _ids())
    assert [(r.offset_s, r.due_at) for r in planned] == [(3600, start - timedelta(hours=1))]


def test_contact_data_is_validated():
    assert normalized_email("Someone@EXAMPLE.com") == "Someone@example.com"
    with pytest.raises(InvalidEmail):
        normalized_email("someone@@example")
    with pytest.raises(InvalidPhone):
        checked_phone("06 12 34 56 78")


def test_templates_render_per_locale_with_fallback_and_escape_html():
    renderer = JinjaRenderer()
    context = {
        "role": "client",
        "booking_id": "<b>",
        "place_id": "p",
        "start_time": NOW,
        "end_time": NOW,
        "price": "10.00 EUR",
        "hours_before": 1,
    }
    french = renderer.render("booking.confirmed", Channel.EMAIL, Preferences("u", locale="fr-CA"), context)
    assert french.subject == "Réservation confirmée"
    assert "<b>" in french.text and "&lt;b&gt;" in french.html
    fallback = renderer.render("booking.reminder", Channel.SMS, Preferences("u", locale="de"), context)
    assert fallback.text.startswith("Reserva: Booking <b> at place p")
    tokyo = renderer.render("booking.reminder", Channel.EMAIL, Preferences("u", time_zone="Asia/Tokyo"), context)
    assert "2025-03-10 21:00 JST" in tokyo.text


def _raw(event_type, payload, event_id=None):
    packed = any_pb2.Any()
    packed.Pack(payload)
    return envelope_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()), event_type=event_type, payload=packed
    ).SerializeToString()


def test_decoding_a_confirmed_booking_extracts_people_and_facts():
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    payload = booking_events.BookingConfirmed(booking_id="b", client_id=client, host_id=host)
    payload.ranges.add().start_time.FromDatetime(NOW)
    payload.price.amount_minor, payload.price.currency_code = 1999, "EUR"
    event = decode(_raw("booking.confirmed", payload))
    assert event.participants == {"client": client, "host": host}
    assert event.facts["price"] == "19.99 EUR" and event.booking_start == NOW


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x01\x02garbage", "MALFORMED_ENVELOPE"),
        (_raw("booking.confirmed", booking_events.BookingConfirmed(), event_id="not-a-uuid"), "MALFORMED_ENVELOPE"),
        (_raw("booking.frobnicated", booking_events.BookingConfirmed()), "UNKNOWN_EVENT_TYPE"),
        (_raw("booking.cancelled", booking_events.BookingConfirmed()), "MALFORMED_PAYLOAD"),
        (_raw("booking.confirmed", booking_events.BookingConfirmed(client_id="x")), "MALFORMED_PAYLOAD"),
    ],
)
def test_undecodable_events_are_rejected_with_a_code(raw, code):
    with pytest.raises(EventRejected) as rejected:
        decode(raw)
    assert rejected.value.code == code


def test_a_refused_refund_tells_the_client_and_the_agents_in_their_own_words():
    client = str(uuid.uuid4())
    payload = payment_events.PaymentRefundFailed(
        payment_id="pay", booking_id="bk", user_id=client, refund_id="rf", failure_reason="refund_declined"
    )
    payload.amount.amount_minor, payload.amount.currency_code = 5000, "EUR"
    event = decode(_raw("payment.refund_failed", payload))
    assert event.participants == {"client": client} and event.facts["price"] == "50.00 EUR"
    people = recipients(event, ["agent-1"])
    assert [(r.user_id, r.role) for r in people] == [(client, "client"), ("agent-1", "agent")]
    renderer = JinjaRenderer()
    for role, expected in (("client", "We could not refund 50.00 EUR"), ("agent", "refused a refund of 50.00 EUR")):
        mail = renderer.render("payment.refund_failed", Channel.EMAIL, Preferences("u"), {**event.facts, "role": role})
        assert expected in mail.text and "refund_declined" in mail.text


def test_a_fee_nobody_could_collect_tells_the_client_and_the_agents():
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    payload = booking_events.BookingFeeUnpaid(
        booking_id="bk", client_id=client, host_id=host, payment_id="pay", failure_reason="capture_declined"
    )
    payload.amount.amount_minor, payload.amount.currency_code = 1200, "EUR"
    event = decode(_raw("booking.fee_unpaid", payload))
    people = recipients(event, ["agent-1"])
    assert [(r.user_id, r.role) for r in people] == [(client, "client"), ("agent-1", "agent")]
    renderer = JinjaRenderer()
    for role, expected in (("client", "could not collect 12.00 EUR"), ("agent", "refused to capture 12.00 EUR")):
        mail = renderer.render("booking.fee_unpaid", Channel.EMAIL, Preferences("u"), {**event.facts, "role": role})
        assert expected in mail.text and "capture_declined" in mail.text


def test_only_documented_events_that_notify_no_one_and_touch_no_reminder_concern_nobody():
    from notifications.domain.routing import concerns_nobody

    assert concerns_nobody("hold.created") and concerns_nobody("payment.authorized")
    assert not concerns_nobody("booking.confirmed")  # the client and the host hear of it
    assert not concerns_nobody("booking.expired")  # the client hears of it and its reminders go
    assert not concerns_nobody("some.future_event")  # unknown types are recorded, not guessed about
