"""The gRPC NotificationService: thin translation between protos and the handlers."""

from __future__ import annotations

from kit.context import current_caller
from notifications.adapters.event_codec import decode
from notifications.entrypoints import proto_mapping as m
from notifications.service_layer import handlers
from notifications.service_layer.context import Services
from reserva.notifications.v1 import notifications_pb2 as pb
from reserva.notifications.v1 import notifications_pb2_grpc


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    def __init__(self, svc: Services):
        self.svc = svc

    async def ListNotifications(self, request: pb.ListNotificationsRequest, context) -> pb.ListNotificationsResponse:
        page = await handlers.list_notifications(
            self.svc, current_caller.get(), request.user_id, request.unread_only, request.page_size, request.page_token
        )
        return pb.ListNotificationsResponse(
            notifications=[m.notification_to_proto(n) for n in page.notifications],
            next_page_token=page.next_page_token,
            unread_count=page.unread_count,
        )

    async def MarkNotificationsRead(self, request, context) -> pb.MarkNotificationsReadResponse:
        marked = await handlers.mark_notifications_read(
            self.svc,
            current_caller.get(),
            request.request_id,
            m.fingerprint(request),
            request.user_id,
            list(request.ids),
        )
        return pb.MarkNotificationsReadResponse(marked_count=marked)

    async def GetPreferences(self, request, context) -> pb.Preferences:
        prefs = await handlers.get_preferences(self.svc, current_caller.get(), request.user_id)
        return m.preferences_to_proto(prefs)

    async def UpdatePreferences(self, request, context) -> pb.Preferences:
        prefs = await handlers.update_preferences(
            self.svc,
            current_caller.get(),
            request.request_id,
            m.fingerprint(request),
            m.preferences_update_from_proto(request),
        )
        return m.preferences_to_proto(prefs)

    async def SendAnnouncement(self, request, context) -> pb.Announcement:
        announcement = await handlers.send_announcement(
            self.svc,
            current_caller.get(),
            request.request_id,
            m.fingerprint(request),
            request.subject,
            request.body,
            m.roles_from_proto(request.filter.roles),
            list(request.filter.user_ids),
        )
        return m.announcement_to_proto(announcement)

    async def GetAnnouncement(self, request, context) -> pb.Announcement:
        return m.announcement_to_proto(await handlers.get_announcement(self.svc, current_caller.get(), request.id))

    async def ListDeadLetters(self, request, context) -> pb.ListDeadLettersResponse:
        page = await handlers.list_dead_letters(
            self.svc,
            current_caller.get(),
            request.event_type,
            m.dead_letter_states_from_proto(request.states),
            request.page_size,
            request.page_token,
        )
        return pb.ListDeadLettersResponse(
            dead_letters=[m.dead_letter_to_proto(d) for d in page.dead_letters], next_page_token=page.next_page_token
        )

    async def ReplayDeadLetter(self, request, context) -> pb.DeadLetter:
        letter = await handlers.replay_dead_letter(
            self.svc, current_caller.get(), request.request_id, m.fingerprint(request), request.id, decode
        )
        return m.dead_letter_to_proto(letter)
