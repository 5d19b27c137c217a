"""Request and response bodies of the booking workflows beyond the basic lifecycle (recurring series,
waitlist, no-show and completion) and of the agents' notification tools (announcements, dead
letters). Requests are strict like every other request body (gateway/entrypoints/schemas.py).
Responses follow gateway/entrypoints/responses.py: the proto3 JSON of `proto_json.to_json` unchanged
(routes use `response_model_exclude_unset=True`), strict, fields mirroring the protos (bytes as
base64); tests/unit/gateway/test_gateway_workflow_models.py keeps them in step with the descriptors.
One deliberate difference: an announcement's audience names roles as the rest of the API does
(client, host, agent), not by the notifications service's enum."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field
from pydantic.json_schema import SkipJsonSchema

from gateway.entrypoints.responses import BookingOut, PageToken, StrictOut, TimeRangeOut, Timestamp
from gateway.entrypoints.schemas import Role, Strict, TimeRangeIn, Uuid

WaitlistState = Literal["STATE_UNSPECIFIED", "WAITING", "OFFERED", "FULFILLED", "LEFT", "EXPIRED"]
AnnouncementState = Literal["STATE_UNSPECIFIED", "PENDING", "SENDING", "COMPLETED", "FAILED"]
DeadLetterState = Literal["STATE_UNSPECIFIED", "PENDING", "REPLAYED", "REPLAY_FAILED"]
# Filters take the meaningful states only.
WaitlistStateFilter = Literal["WAITING", "OFFERED", "FULFILLED", "LEFT", "EXPIRED"]
DeadLetterStateFilter = Literal["PENDING", "REPLAYED", "REPLAY_FAILED"]


# --- requests -----------------------------------------------------------------------------------


class NoShowIn(Strict):
    reason: str = Field(default="", max_length=500, description="Note kept in the booking's history.")


class RecurrenceIn(Strict):
    """Exactly one of `count` and `until`."""

    frequency: Literal["DAILY", "WEEKLY"]
    count: int | None = Field(default=None, ge=2, le=52, description="Occurrences including the first.")
    until: AwareDatetime | None = Field(default=None, description="Last allowed occurrence start (inclusive).")


class SeriesIn(Strict):
    place_id: Uuid
    first_occurrence: TimeRangeIn
    recurrence: RecurrenceIn
    guests: int = Field(ge=1, le=10000)
    units: int = Field(default=1, ge=1, le=1000)
    payment_method_token: str = Field(min_length=1, max_length=255, description="Each occurrence is paid.")
    note: str = Field(default="", max_length=1000)
    allow_partial: bool = Field(
        default=False, description="Book the free occurrences and report the taken ones in `conflicts`."
    )


class WaitlistIn(Strict):
    place_id: Uuid
    range: TimeRangeIn
    guests: int = Field(ge=1, le=10000)
    units: int = Field(default=1, ge=1, le=1000)


class AnnouncementFilterIn(Strict):
    """Empty lists match everyone; both set means users in `user_ids` having one of `roles`."""

    roles: list[Role] = Field(default_factory=list, max_length=3)
    user_ids: list[Uuid] = Field(default_factory=list, max_length=10000)


class AnnouncementIn(Strict):
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10000)
    filter: AnnouncementFilterIn | None = Field(default=None, description="Audience; unset: every user.")


# --- responses ----------------------------------------------------------------------------------

Optional = SkipJsonSchema[None]


class SeriesOut(StrictOut):
    """A booked recurring series. (reserva.booking.v1.RecurringBookingResult)"""

    booked: list[BookingOut] = Field(description="Bookings created, one per booked occurrence, by start.")
    conflicts: list[TimeRangeOut] = Field(
        description="Occurrences not booked because taken or outside the schedule (only with allow_partial)."
    )
    series_id: str = Field(description="UUID of the series, also set on every booking.")


class WaitlistEntryOut(StrictOut):
    """A client waiting for a taken range of a place. (reserva.booking.v1.WaitlistEntry)"""

    id: str = Field(description="Identifier, a UUID.")
    place_id: str = Field(description="Place UUID.")
    client_id: str = Field(description="UUID of the waiting client.")
    range: TimeRangeOut | Optional = Field(default=None, description="Wanted range.")
    guests: int = Field(description="Guests wanted.")
    units: int = Field(description="Units wanted.")
    state: WaitlistState = Field(
        description="WAITING; OFFERED (a hold until offer_expire_time); FULFILLED; LEFT; EXPIRED."
    )
    position: int = Field(
        description="Position among WAITING entries of the place with overlapping ranges, 1-based; 0 when not WAITING."
    )
    offer_expire_time: Timestamp | Optional = Field(
        default=None, description="When an OFFERED entry's offer lapses; unset otherwise."
    )
    create_time: Timestamp | Optional = Field(default=None, description="Creation time.")
    update_time: Timestamp | Optional = Field(default=None, description="Time of the last state change.")


class WaitlistPageOut(StrictOut):
    entries: list[WaitlistEntryOut] = Field(description="By wanted range start, then creation time.")
    next_page_token: PageToken


class AnnouncementFilterOut(StrictOut):
    """Who receives an announcement; empty lists match everyone. (reserva.notifications.v1.AnnouncementFilter)"""

    roles: list[Role] = Field(description="Recipients' roles.")
    user_ids: list[str] = Field(description="Recipients' UUIDs.")


class AnnouncementOut(StrictOut):
    """A message sent by an agent to many users. (reserva.notifications.v1.Announcement)"""

    id: str = Field(description="Identifier, a UUID.")
    subject: str = Field(description="Subject, 1-200 characters.")
    body: str = Field(description="Body, plain text, 1-10000 characters.")
    filter: AnnouncementFilterOut | Optional = Field(default=None, description="Audience.")
    state: AnnouncementState = Field(description="Delivery progress.")
    sent_count: int = Field(description="Recipients notified so far.")
    failed_count: int = Field(description="Recipients whose notification failed.")
    total: int = Field(description="Recipients matched; 0 while PENDING.")
    created_by: str = Field(description="UUID of the agent who sent it.")
    create_time: Timestamp | Optional = Field(default=None, description="Creation time.")
    complete_time: Timestamp | Optional = Field(
        default=None, description="When it reached COMPLETED or FAILED; unset before."
    )


class DeadLetterOut(StrictOut):
    """An event the notifications consumer failed to process after all retries. (reserva.notifications.v1.DeadLetter)"""

    id: str = Field(description="Identifier, a UUID.")
    stream: str = Field(description='Stream the event came from, for example "<namespace>:events:booking".')
    consumer_group: str = Field(description='Consumer group that failed, for example "notifications".')
    event_id: str = Field(description="EventEnvelope.event_id of the event.")
    event_type: str = Field(description='EventEnvelope.event_type, for example "booking.confirmed".')
    envelope: str = Field(description="The serialized reserva.events.v1.EventEnvelope, base64.")
    error: str = Field(description="Last error: a fixed machine-readable code plus a short message.")
    attempts: int = Field(description="Processing attempts made.")
    state: DeadLetterState = Field(description="PENDING; REPLAYED (terminal); REPLAY_FAILED (may be replayed again).")
    create_time: Timestamp | Optional = Field(default=None, description="When the event was dead-lettered.")
    replay_time: Timestamp | Optional = Field(default=None, description="Time of the last replay; unset if never.")


class DeadLetterPageOut(StrictOut):
    dead_letters: list[DeadLetterOut] = Field(description="Oldest first.")
    next_page_token: PageToken
