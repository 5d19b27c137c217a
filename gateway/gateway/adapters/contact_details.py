"""Tells the notifications service a user's contact details (UpdatePreferences, as the user)."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from gateway.adapters.peers import Peers
from gateway.domain.model import ContactShare, User
from gateway.service_layer.handlers import SendContactDetails
from kit.identity import Caller
from reserva.notifications.v1 import notifications_pb2


def notifications_contact_sender(peers: Peers, timeout_s: float) -> SendContactDetails:
    """`timeout_s` is short: a registration must not wait long on it (the retry worker catches up)."""

    async def send(user: User, share: ContactShare) -> None:
        paths = ["locale", "time_zone"] + (["email"] if share.with_email else [])
        update = notifications_pb2.UpdatePreferencesRequest(
            request_id=share.share_id,  # one per change: a retry of it is recognised, a newer change is not
            preferences=notifications_pb2.Preferences(
                user_id=user.id, email=user.email, locale=user.locale, time_zone=user.time_zone
            ),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
        # As the user: notifications records the roles of a caller who updates their own preferences.
        caller = Caller(user_id=user.id, roles=user.roles)
        await peers.notifications.call("UpdatePreferences", update, timeout=timeout_s, caller=caller)

    return send
