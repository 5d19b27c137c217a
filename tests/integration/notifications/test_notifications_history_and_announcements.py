"""History pages with read state; announcements go out in resumable batches; every transaction
of these flows stays within the lock budget."""

import uuid

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
from kit.lock_probe import LockBudget
from notifications.service_layer.delivery import process_announcement_batch
from reserva.notifications.v1 import notifications_pb2 as pb

AGENT = caller_metadata(str(uuid.uuid4()), "agent")


async def test_history_pages_newest_first_with_unread_counts_and_mark_read(service, stub, redis, namespace):
    client = str(uuid.uuid4())
    events = [booking_confirmed(client, str(uuid.uuid4())) for _ in range(3)]
    for event in events:
        await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
    # No e-mail address: each event leaves an in-app row and a failed e-mail row.
    await wait_until(lambda: _count(stub, client, 6))

    seen, token = [], ""
    while True:
        page = await history(stub, client, page_size=4, page_token=token)
        assert page.unread_count == 6
        seen += page.notifications
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 6 and len({n.id for n in seen}) == 6
    times = [(n.create_time.ToNanoseconds(), n.id) for n in seen]
    assert times == sorted(times, reverse=True)

    first_two = [seen[0].id, seen[1].id]
    request = pb.MarkNotificationsReadRequest(request_id=str(uuid.uuid4()), user_id=client, ids=first_two)
    marked = await stub.MarkNotificationsRead(request, metadata=caller_metadata(client))
    assert marked.marked_count == 2
    assert (await stub.MarkNotificationsRead(request, metadata=caller_metadata(client))).marked_count == 2
    unread = await history(stub, client, unread_only=True)
    assert unread.unread_count == 4 and {n.id for n in unread.notifications}.isdisjoint(first_two)
    everything = pb.MarkNotificationsReadRequest(request_id=str(uuid.uuid4()), user_id=client)
    assert (await stub.MarkNotificationsRead(everything, metadata=caller_metadata(client))).marked_count == 4
    assert (await history(stub, client)).unread_count == 0


async def _count(stub, user_id, n):
    return len((await history(stub, user_id, page_size=200)).notifications) >= n


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [({"page_size": 201}, "INVALID_PAGE_SIZE"), ({"page_token": "garbage"}, "INVALID_PAGE_TOKEN")],
)
async def test_bad_history_requests_are_invalid_argument(stub, request_fields, reason):
    user = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.ListNotifications(
            pb.ListNotificationsRequest(user_id=user, **request_fields), metadata=caller_metadata(user)
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_from_rpc(bad.value).reason == reason


async def test_another_users_history_is_permission_denied(stub):
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.ListNotifications(
            pb.ListNotificationsRequest(user_id=str(uuid.uuid4())), metadata=caller_metadata(str(uuid.uuid4()))
        )
    assert error_from_rpc(denied.value).reason == "NOT_OWN_NOTIFICATIONS"


async def _hosts(stub, count, with_email=True):
    users = []
    for _ in range(count):
        user = str(uuid.uuid4())
        await stub.UpdatePreferences(
            pb.UpdatePreferencesRequest(
                request_id=str(uuid.uuid4()),
                preferences=pb.Preferences(user_id=user, email=f"ann-{user[:8]}@example.com" if with_email else ""),
                update_mask={"paths": ["email"]},
            ),
            metadata=caller_metadata(user, "host"),
        )
        users.append(user)
    return users


async def test_an_announcement_reaches_the_filtered_users_in_batches(notifications_factory, smtp_sink):
    service = await notifications_factory(announcement_batch=2)
    async with grpc.aio.insecure_channel(service.address) as channel:
        from reserva.notifications.v1 import notifications_pb2_grpc

        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        hosts = await _hosts(stub, 3) + await _hosts(stub, 1, with_email=False)
        client = str(uuid.uuid4())
        await set_preferences(stub, client, ["email"], email=f"ann-{client[:8]}@example.com")
        request = pb.SendAnnouncementRequest(
            request_id=str(uuid.uuid4()),
            subject="Maintenance tonight",
            body="Reserva is down for maintenance from 02:00 to 03:00 UTC.",
            filter=pb.AnnouncementFilter(roles=[pb.ROLE_HOST], user_ids=[*hosts, client]),
        )
        created = await stub.SendAnnouncement(request, metadata=AGENT)
        assert created.state == pb.Announcement.PENDING
        assert (await stub.SendAnnouncement(request, metadata=AGENT)).id == created.id

        async def completed():
            found = await stub.GetAnnouncement(pb.GetAnnouncementRequest(id=created.id), metadata=AGENT)
            return found if found.state == pb.Announcement.COMPLETED else None

        done = await wait_until(completed)
        assert (done.total, done.sent_count, done.failed_count) == (4, 3, 1)
        for host in hosts[:3]:
            [message] = await emails_to(smtp_sink, f"ann-{host[:8]}@example.com")
            assert message["Subject"] == "Maintenance tonight"
        assert smtp_sink.to(f"ann-{client[:8]}@example.com") == []
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.SendAnnouncement(request, metadata=caller_metadata(client))
        assert error_from_rpc(denied.value).reason == "NOT_OPERATOR"


async def test_an_announcement_resumes_after_a_crash_without_notifying_anyone_twice(
    notifications_factory, settings_for
):
    from kit.runtime import build_runtime
    from notifications.adapters import orm
    from notifications.bootstrap import build_services
    from notifications.config import NotificationsSettings

    service = await notifications_factory(announcement_batch=1000, poll_interval_s=3600)
    async with grpc.aio.insecure_channel(service.address) as channel:
        from reserva.notifications.v1 import notifications_pb2_grpc

        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        hosts = await _hosts(stub, 5, with_email=False)
        created = await stub.SendAnnouncement(
            pb.SendAnnouncementRequest(
                request_id=str(uuid.uuid4()), subject="s", body="b", filter=pb.AnnouncementFilter(user_ids=hosts)
            ),
            metadata=AGENT,
        )
    # A worker does two batches of 2 and "crashes"; a fresh one continues from the stored cursor.
    settings = settings_for("notifications", NotificationsSettings)
    for _ in range(2):
        runtime = build_runtime(settings, orm.outbox)
        services, _, webhooks = build_services(settings, runtime)
        try:
            for _ in range(2):
                await process_announcement_batch(services, 2)
        finally:
            await webhooks.aclose()
            await runtime.close()
    uow = services.uow()
    async with uow:
        announcement = await uow.announcements.get(created.id)
        counts = [len(await uow.notifications.page(h, False, None, 10)) for h in hosts]
    assert announcement.state.value == "completed" and announcement.sent_count + announcement.failed_count == 5
    assert counts == [2] * 5  # in-app + failed e-mail, once each


async def test_every_transaction_of_the_flows_stays_within_the_lock_budget(
    service, stub, redis, namespace, smtp_sink, lock_readings
):
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    await set_preferences(stub, client, ["email"], email=f"locks-{client[:8]}@example.com")
    event = booking_confirmed(client, host)
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
    await emails_to(smtp_sink, f"locks-{client[:8]}@example.com")
    await stub.SendAnnouncement(
        pb.SendAnnouncementRequest(
            request_id=str(uuid.uuid4()), subject="s", body="b", filter=pb.AnnouncementFilter(user_ids=[client])
        ),
        metadata=AGENT,
    )
    await emails_to(smtp_sink, f"locks-{client[:8]}@example.com", count=2)
    await history(stub, client)

    readings = [r for r in lock_readings() if r.service == "notifications"]
    operations = {r.operation for r in readings}
    assert {"consume_event", "sender", "announcements", "UpdatePreferences", "ListNotifications"} <= operations
    budget = LockBudget()
    assert [r for r in readings if budget.violation(r)] == []
