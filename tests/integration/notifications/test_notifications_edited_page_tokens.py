"""Page tokens are unsigned base64 JSON: a caller can decode one notifications issued, edit it and
send it back, or send a JSON value of any shape. History and dead-letter pages answer such a token
INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN, never INTERNAL (an id that is no UUID reached
PostgreSQL, a time without a UTC offset was taken as the server's local time)."""

from __future__ import annotations

import uuid

from notifications_support import booking_confirmed, caller_metadata, envelope, history, publish, wait_until
from page_token_support import HAND_MADE, NAIVE, NOT_A_UUID, decoded, encoded, wrong_answers

from reserva.notifications.v1 import notifications_pb2 as pb


def edited_items(token: str, index: int, values: list) -> list[str]:
    """The token (a JSON list) with item `index` replaced by each of `values`."""
    items = decoded(token)
    return [encoded(items[:index] + [value] + items[index + 1 :]) for value in values]


async def test_an_edited_history_token_is_an_invalid_page_token(stub, redis, namespace):
    client = str(uuid.uuid4())
    event = booking_confirmed(client, str(uuid.uuid4()))
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
    # No e-mail address: the event leaves an in-app row and a failed e-mail row, two pages of one.
    await wait_until(lambda: _has(stub, client, 2))
    token = (await history(stub, client, page_size=1)).next_page_token
    scope, when, item_id = decoded(token)
    assert scope.startswith(client)

    tokens = [
        *edited_items(token, 1, ["yesterday", NAIVE, 20300101, None, "0001-01-01T00:00:00+14:00"]),
        *edited_items(token, 2, [NOT_A_UUID, 12, None, "\u0000"]),
        encoded([scope, when]),
        encoded([scope, when, item_id, item_id]),
        encoded({"0": scope, "1": when, "2": item_id}),
        encoded(scope[:3]),
        *(encoded(shape) for shape in HAND_MADE),
    ]

    async def call(page_token):
        await history(stub, client, page_size=1, page_token=page_token)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_dead_letters_token_is_an_invalid_page_token(stub):
    agent = caller_metadata(str(uuid.uuid4()), "agent")
    event_type = f"test.{uuid.uuid4().hex[:8]}"
    scope = f"{event_type}:pending,replay_failed"
    when = "2030-01-01T10:00:00+00:00"
    tokens = [
        encoded([scope, when, NOT_A_UUID]),
        encoded([scope, NAIVE, str(uuid.uuid4())]),
        encoded([scope, "0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),
        encoded([scope, when, 12]),
        encoded([scope, when]),
        *(encoded(shape) for shape in HAND_MADE),
    ]

    async def call(page_token):
        request = pb.ListDeadLettersRequest(event_type=event_type, page_token=page_token)
        await stub.ListDeadLetters(request, metadata=agent)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def _has(stub, user_id: str, n: int) -> bool:
    return len((await history(stub, user_id, page_size=200)).notifications) >= n
