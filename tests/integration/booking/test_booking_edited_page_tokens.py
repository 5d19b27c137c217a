"""Input the caller controls never makes booking answer INTERNAL. Page tokens are unsigned base64
JSON: a caller can decode a token the service issued, edit it and send it back, or send a JSON
value of any shape. Each such token is INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN; a series
that would run past the end of the calendar is INVALID_ARGUMENT with reason INVALID_RECURRENCE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from booking_support import (
    AGENT,
    As,
    booking_clock,
    create_request,
    fail,
    future_hour,
    make_place,
    refused,
    rid,
    trange,
    user,
)
from page_token_support import HAND_MADE, NAIVE, NOT_A_UUID, decoded, edited, encoded, wrong_answers

from reserva.booking.v1 import booking_pb2 as bpb


async def test_an_edited_list_bookings_token_is_an_invalid_page_token(bstub, astub):
    client = user()
    place = await make_place(astub, user("host"))
    for days in (70, 71):
        start = future_hour(days=days)
        await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    first = await As(bstub, client).ListBookings(bpb.ListBookingsRequest(page_size=1))
    token = first.next_page_token
    assert set(decoded(token)) == {"f", "v", "id"}
    second = await As(bstub, client).ListBookings(bpb.ListBookingsRequest(page_size=1, page_token=token))
    assert len(second.bookings) == 1 and second.bookings[0].id != first.bookings[0].id

    tokens = [
        edited(token, v="yesterday"),
        edited(token, v=NAIVE),
        edited(token, v=5),
        edited(token, v=None),
        edited(token, v=...),
        edited(token, id=NOT_A_UUID),
        edited(token, id=12),
        edited(token, id=...),
        edited(token, f=["not", "a", "fingerprint"]),
        *(encoded(shape) for shape in HAND_MADE),
    ]

    async def call(page_token):
        await As(bstub, client).ListBookings(bpb.ListBookingsRequest(page_size=1, page_token=page_token))

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_list_waitlist_token_is_an_invalid_page_token(bstub, astub):
    host = user("host")
    place = await make_place(astub, host)
    start = future_hour(days=72)
    span = (start, start + timedelta(hours=1))
    await As(bstub, user()).CreateBooking(create_request(place.id, span))
    for _ in range(2):
        join = bpb.JoinWaitlistRequest(request_id=rid(), place_id=place.id, range=trange(*span), guests=1)
        await As(bstub, user()).JoinWaitlist(join)
    first = await As(bstub, host).ListWaitlist(bpb.ListWaitlistRequest(place_id=place.id, page_size=1))
    token = first.next_page_token
    assert decoded(token) == {"o": 1}

    tokens = [
        edited(token, o=-1),
        edited(token, o="x"),
        edited(token, o="1"),
        edited(token, o=1.5),
        edited(token, o=True),
        edited(token, o=2**40),
        edited(token, o=None),
        edited(token, o=...),
        *(encoded(shape) for shape in HAND_MADE),
    ]

    async def call(page_token):
        await As(bstub, host).ListWaitlist(
            bpb.ListWaitlistRequest(place_id=place.id, page_size=1, page_token=page_token)
        )

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_list_reviews_token_is_an_invalid_page_token(bstub, astub, booking_server):
    place = await make_place(astub, user("host"))
    clients = [user(), user()]
    bookings = []
    for days, client in zip((73, 74), clients, strict=True):
        start = future_hour(days=days)
        booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
        with booking_clock(booking_server, timedelta(days=days + 1)):
            await As(bstub, AGENT).CompleteBooking(bpb.CompleteBookingRequest(request_id=rid(), id=booking.id))
        bookings.append(booking)
    with booking_clock(booking_server, timedelta(days=76)):
        for client, booking in zip(clients, bookings, strict=True):
            review = bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=5)
            await As(bstub, client).CreateReview(review)
    first = await As(bstub, user()).ListReviews(bpb.ListReviewsRequest(place_id=place.id, page_size=1))
    token = first.next_page_token
    assert set(decoded(token)) == {"t", "id"}

    tokens = [
        edited(token, t="not a date"),
        edited(token, t=NAIVE),
        edited(token, t=20300101),
        edited(token, t=...),
        edited(token, id=NOT_A_UUID),
        edited(token, id=None),
        edited(token, id=...),
        *(encoded(shape) for shape in HAND_MADE),
    ]

    async def call(page_token):
        await As(bstub, user()).ListReviews(
            bpb.ListReviewsRequest(place_id=place.id, page_size=1, page_token=page_token)
        )

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_a_series_running_past_the_end_of_the_calendar_is_an_invalid_recurrence(bstub, astub):
    place = await make_place(astub, user("host"))
    for start, frequency in (
        (datetime(9999, 12, 30, 10, tzinfo=UTC), bpb.Recurrence.DAILY),
        (datetime(9999, 12, 20, 10, tzinfo=UTC), bpb.Recurrence.WEEKLY),
        (datetime(9999, 12, 31, 22, tzinfo=UTC), bpb.Recurrence.DAILY),
    ):
        request = bpb.CreateRecurringBookingsRequest(
            request_id=rid(),
            place_id=place.id,
            first_occurrence=trange(start, start + timedelta(hours=1)),
            recurrence=bpb.Recurrence(frequency=frequency, count=3),
            guests=1,
            payment_method_token="tok_success",
        )
        error = await fail(As(bstub, user()).CreateRecurringBookings(request))
        assert refused(error) == ("INVALID_ARGUMENT", "INVALID_RECURRENCE"), start
