"""Preferences decide channels, addresses and timing; updates are idempotent and validated."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from notifications_support import (
    booking_confirmed,
    caller_metadata,
    emails_to,
    envelope,
    history,
    publish,
    set_preferences,
    wait_until,
)

from kit.grpc_client import error_from_rpc
from notifications.adapters.sms import SANDBOX_REJECTED_NUMBER
from reserva.notifications.v1 import notifications_pb2 as pb
from reserva.type.v1 import types_pb2

WEBHOOK = ["webhook_url", "webhook_secret"]


async def _rows(stub, user_id, count):
    page = await history(stub, user_id)
    return page.notifications if len(page.notifications) >= count else None


async def test_quiet_hours_defer_email_until_the_window_ends_in_the_users_time_zone(
    service, stub, redis, namespace, smtp_sink
):
    client = str(uuid.uuid4())
    zone = ZoneInfo("Asia/Tokyo")
    local = datetime.now(UTC).astimezone(zone)
    start, end = local - timedelta(hours=1), local + timedelta(hours=1)
    address = f"quiet-{client[:8]}@example.com"
    await set_preferences(
        stub,
        client,
        ["email", "time_zone", "quiet_hours_start", "quiet_hours_end"],
        email=address,
        time_zone="Asia/Tokyo",
        quiet_hours_start=types_pb2.LocalTime(hours=start.hour, minutes=start.minute),
        quiet_hours_end=types_pb2.LocalTime(hours=end.hour, minutes=end.minute),
    )
    event = booking_confirmed(client, str(uuid.uuid4()))
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

    rows = await wait_until(lambda: _rows(stub, client, 2))
    email = next(n for n in rows if n.channel == pb.CHANNEL_EMAIL)
    in_app = next(n for n in rows if n.channel == pb.CHANNEL_IN_APP)
    assert email.status == pb.Notification.DEFERRED and email.attempts == 0
    window_end = email.send_time.ToDatetime(tzinfo=UTC).astimezone(zone)
    assert (window_end.hour, window_end.minute) == (end.hour, end.minute)
    assert window_end > local
    assert in_app.status == pb.Notification.SENT
    assert smtp_sink.to(address) == []


async def test_channel_switches_choose_channels_per_event_type(service, stub, redis, namespace, smtp_sink):
    client = str(uuid.uuid4())
    address = f"switch-{client[:8]}@example.com"
    await set_preferences(
        stub,
        client,
        ["email", "phone", "channel_preferences"],
        email=address,
        phone="+33612345678",
        channel_preferences=[
            pb.ChannelPreference(event_type="*", channel=pb.CHANNEL_SMS, enabled=True),
            pb.ChannelPreference(event_type="booking.confirmed", channel=pb.CHANNEL_EMAIL, enabled=False),
        ],
    )
    event = booking_confirmed(client, str(uuid.uuid4()))
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

    sms = await wait_until(
        lambda: [m for m in service.notifier.sms.sent if m.to == "+33612345678" and event.booking_id in m.text]
    )
    assert len(sms) == 1 and sms[0].text.startswith("Reserva: Your booking")
    rows = (await history(stub, client)).notifications
    assert sorted(n.channel for n in rows) == [pb.CHANNEL_SMS, pb.CHANNEL_IN_APP]
    assert smtp_sink.to(address) == []


async def test_a_missing_address_is_recorded_as_failed_and_a_refused_sms_fails_without_retries(
    service, stub, redis, namespace
):
    client = str(uuid.uuid4())
    await set_preferences(
        stub,
        client,
        ["phone", "channel_preferences"],
        phone=SANDBOX_REJECTED_NUMBER,
        channel_preferences=[pb.ChannelPreference(event_type="*", channel=pb.CHANNEL_SMS, enabled=True)],
    )
    event = booking_confirmed(client, str(uuid.uuid4()))
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

    async def settled():
        rows = await _rows(stub, client, 3)
        return rows if rows and all(n.status != pb.Notification.QUEUED for n in rows) else None

    rows = {n.channel: n for n in await wait_until(settled)}
    assert rows[pb.CHANNEL_EMAIL].status == pb.Notification.FAILED
    assert rows[pb.CHANNEL_EMAIL].failure_reason == "no email address"
    assert rows[pb.CHANNEL_SMS].status == pb.Notification.FAILED
    assert (rows[pb.CHANNEL_SMS].failure_reason, rows[pb.CHANNEL_SMS].attempts) == ("sms_rejected", 1)


async def test_the_host_gets_its_own_email_in_its_locale(service, stub, redis, namespace, smtp_sink):
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    address = f"hote-{host[:8]}@example.com"
    await set_preferences(stub, host, ["email", "locale"], email=address, locale="fr-FR")
    event = booking_confirmed(client, host)
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
    [message] = await emails_to(smtp_sink, address)
    assert message["Subject"] == "Nouvelle réservation confirmée"
    assert event.place_id in message.get_body(("plain",)).get_content()


async def test_updates_are_idempotent_by_request_id_and_refuse_a_reused_one(stub):
    user = str(uuid.uuid4())
    request_id = str(uuid.uuid4())
    first = await set_preferences(stub, user, ["email"], request_id, email="A.Person@Example.com")
    again = await set_preferences(stub, user, ["email"], request_id, email="A.Person@Example.com")
    assert first.etag == again.etag and first.email == "A.Person@example.com"
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await set_preferences(stub, user, ["email"], request_id, email="other@example.com")
    assert error_from_rpc(reused.value).reason == "IDEMPOTENCY_KEY_REUSED"
    current = await stub.GetPreferences(pb.GetPreferencesRequest(user_id=user), metadata=caller_metadata(user))
    assert current.email == "A.Person@example.com" and current.etag == first.etag


async def test_a_stale_etag_is_aborted(stub):
    user = str(uuid.uuid4())
    first = await set_preferences(stub, user, ["locale"], locale="fr")
    await set_preferences(stub, user, ["locale"], locale="de")
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await set_preferences(stub, user, ["locale"], locale="en", etag=first.etag)
    assert stale.value.code() is grpc.StatusCode.ABORTED
    assert error_from_rpc(stale.value).reason == "CONCURRENT_MODIFICATION"


@pytest.mark.parametrize(
    ("paths", "fields", "reason"),
    [
        (["email"], {"email": "not-an-email"}, "INVALID_EMAIL"),
        (["phone"], {"phone": "0612345678"}, "INVALID_PHONE"),
        (
            ["webhook_url", "webhook_secret"],
            {"webhook_url": "ftp://x", "webhook_secret": "s" * 20},
            "INVALID_WEBHOOK_URL",
        ),
        (
            ["webhook_url", "webhook_secret"],
            {"webhook_url": "http://example.com/h", "webhook_secret": "s" * 20},
            "INVALID_WEBHOOK_URL",
        ),
        *(
            (["webhook_url", "webhook_secret"], {"webhook_url": url, "webhook_secret": "s" * 20}, "INVALID_WEBHOOK_URL")
            for url in (
                "https://169.254.169.254/latest/meta-data/",  # the cloud's metadata endpoint
                "https://10.0.0.7/hooks",
                "https://[::1]:8443/hooks",
                "https://localhost/hooks",
                "http://127.0.0.1:8080/hooks",  # loopback over HTTP: development only
                "https://[::ffff:127.0.0.1]/hooks",
                "https://[::1/hooks",  # unbalanced: urlsplit raised ValueError, answered INTERNAL
            )
        ),
        (["time_zone"], {"time_zone": "Mars/Olympus"}, "INVALID_TIME_ZONE"),
        (["time_zone"], {"time_zone": "America"}, "INVALID_TIME_ZONE"),  # a folder of the zone database
        (["etag"], {}, "INVALID_UPDATE_MASK"),
        (["shoe_size"], {}, "INVALID_UPDATE_MASK"),
        (["quiet_hours_start"], {"quiet_hours_start": types_pb2.LocalTime(hours=22)}, "INVALID_QUIET_HOURS"),
    ],
)
async def test_bad_preferences_are_invalid_argument_with_a_reason(stub, paths, fields, reason):
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await set_preferences(stub, str(uuid.uuid4()), paths, **fields)
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_from_rpc(bad.value).reason == reason


async def test_users_cannot_read_or_change_someone_elses_preferences(stub):
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.GetPreferences(
            pb.GetPreferencesRequest(user_id=str(uuid.uuid4())), metadata=caller_metadata(str(uuid.uuid4()))
        )
    assert error_from_rpc(denied.value).reason == "NOT_OWN_NOTIFICATIONS"


async def test_defaults_are_returned_for_a_user_who_never_saved_preferences(stub):
    user = str(uuid.uuid4())
    prefs = await stub.GetPreferences(pb.GetPreferencesRequest(user_id=user), metadata=caller_metadata(user))
    assert (prefs.user_id, prefs.locale, prefs.time_zone, prefs.email) == (user, "en", "UTC", "")
    assert not prefs.HasField("update_time")
