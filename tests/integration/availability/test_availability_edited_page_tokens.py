"""Page tokens are unsigned base64 JSON: a caller can decode one availability issued, edit its
position and send it back, or send a JSON value of any shape. Every list answers such a token
INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN, never INTERNAL (a time without a UTC offset was
compared with aware ones, an id that is no UUID reached PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from availability_helpers import SERVICE, As, all_week, create_place, dur, hold_request, host, pdate, trange
from page_token_support import HAND_MADE, NAIVE, NOT_A_UUID, decoded, edited, encoded, wrong_answers

from reserva.availability.v1 import availability_pb2 as pb

H = timedelta(hours=1)
TIMES = ["yesterday", NAIVE, 20300101, None, "0001-01-01T00:00:00+14:00"]


def positions(token: str, index: int, values: list) -> list[str]:
    """The token with item `index` of its position replaced by each of `values`."""
    position = decoded(token)["p"]
    return [edited(token, p=position[:index] + [value] + position[index + 1 :]) for value in values]


def shapes(token: str) -> list[str]:
    """Positions of the wrong length or kind under the token's own query hash, and whole tokens
    of other shapes."""
    position = decoded(token)["p"]
    return [
        edited(token, p=position[:-1]),
        edited(token, p=[*position, position[-1]]),
        edited(token, p={"0": position[0]}),
        edited(token, p="x" * len(position)),
        edited(token, p=7),
        edited(token, q=...),
        edited(token, p=...),
        *(encoded(shape) for shape in HAND_MADE),
    ]


async def test_an_edited_list_places_token_is_an_invalid_page_token(stub):
    owner = host()
    for title in ("A", "B"):
        await create_place(stub, owner, title=title)
    order = "price_per_hour desc, rating_average, capacity, create_time, title"
    request = pb.ListPlacesRequest(owner_id=owner.user_id, order_by=order, page_size=1)
    first = await As(stub, owner).ListPlaces(request)
    token = first.next_page_token
    assert len(decoded(token)["p"]) == 6
    request.page_token = token
    second = await As(stub, owner).ListPlaces(request)
    assert [p.title for p in (*first.places, *second.places)] == ["A", "B"]

    tokens = [
        *positions(token, 0, ["x", 1.5, 2**70, None]),
        *positions(token, 1, ["x", None, float("nan"), float("inf")]),
        *positions(token, 2, ["x", 2**40, True]),
        *positions(token, 3, TIMES),
        *positions(token, 4, [5, None, "a\u0000b", "\ud800"]),
        *positions(token, 5, [NOT_A_UUID, 12, None]),
        *shapes(token),
    ]

    async def call(page_token):
        request.page_token = page_token
        await As(stub, owner).ListPlaces(request)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_list_calendar_entries_token_is_an_invalid_page_token(stub):
    owner = host()
    place = await create_place(stub, owner)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=4)
    for hour in (0, 2):
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + hour * H, start + (hour + 1) * H)))
    request = pb.ListCalendarEntriesRequest(place_id=place.id, time_range=trange(start, start + 4 * H), page_size=1)
    token = (await As(stub, owner).ListCalendarEntries(request)).next_page_token
    assert len(decoded(token)["p"]) == 2

    tokens = [*positions(token, 0, TIMES), *positions(token, 1, [NOT_A_UUID, 12, None]), *shapes(token)]

    async def call(page_token):
        request.page_token = page_token
        await As(stub, owner).ListCalendarEntries(request)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_list_free_slots_token_is_an_invalid_page_token(stub):
    schedule = pb.Schedule(opening_hours=all_week(0, 24), slot_granularity=dur(hours=1))
    place = await create_place(stub, time_zone="UTC", schedule=schedule)
    day = datetime.now(UTC).date() + timedelta(days=5)
    request = pb.ListFreeSlotsRequest(
        place_id=place.id, start_date=pdate(day), end_date=pdate(day), duration=dur(hours=1), page_size=2
    )
    token = (await stub.ListFreeSlots(request)).next_page_token
    assert len(decoded(token)["p"]) == 1

    tokens = [*positions(token, 0, TIMES), *shapes(token)]

    async def call(page_token):
        request.page_token = page_token
        await stub.ListFreeSlots(request)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_search_token_is_an_invalid_page_token(stub):
    city = f"Tokens-{uuid.uuid4().hex[:6]}"
    schedule = pb.Schedule(opening_hours=all_week(0, 24), slot_granularity=dur(hours=1))
    for _ in range(2):
        await create_place(stub, city=city, time_zone="UTC", schedule=schedule)
    day = datetime.now(UTC).date() + timedelta(days=6)
    ten = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    request = pb.SearchAvailabilityRequest(city=city, window=trange(ten, ten + H), duration=dur(hours=1), page_size=1)
    token = (await stub.SearchAvailability(request)).next_page_token
    assert len(decoded(token)["p"]) == 3

    tokens = [
        *positions(token, 0, TIMES),
        *positions(token, 1, ["x", None, float("nan"), float("-inf")]),
        *positions(token, 2, [NOT_A_UUID, 12, None]),
        *shapes(token),
    ]

    async def call(page_token):
        request.page_token = page_token
        await stub.SearchAvailability(request)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)
