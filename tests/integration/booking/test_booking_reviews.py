"""Reviews through the real servers: only the client of a completed booking reviews it, once; the
host replies once; agents hide; the place's rating aggregate moves by increments (a recount would
erase the offset the test plants), and review events go to the outbox. Lock budgets per RPC."""

from __future__ import annotations

from datetime import timedelta

from booking_support import (
    AGENT,
    As,
    assert_lock_budget,
    booking_clock,
    create_request,
    fail,
    future_hour,
    make_place,
    refused,
    rid,
    user,
)
from waiting import consumed_through, wait_until

from kit.outbox import stream_name
from reserva.availability.v1 import availability_pb2 as apb
from reserva.booking.v1 import booking_pb2 as bpb


async def _completed_booking(bstub, astub, booking_server, place, client, days: int):
    start = future_hour(days=days)
    booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    with booking_clock(booking_server, timedelta(days=days + 1)):
        await As(bstub, AGENT).CompleteBooking(bpb.CompleteBookingRequest(request_id=rid(), id=booking.id))
    return booking


async def _rating(admin_sql, place_id: str) -> tuple[int, int]:
    row = await admin_sql.fetchrow(
        "SELECT rating_sum, rating_count FROM booking.place_ratings WHERE place_id = $1::uuid", place_id
    )
    return (row["rating_sum"], row["rating_count"]) if row else (0, 0)


async def test_only_the_client_of_a_completed_booking_reviews_it_once(bstub, astub, booking_server, lock_readings):
    host, client = user("host"), user()
    place = await make_place(astub, host)
    start = future_hour(days=50)
    open_booking = await As(bstub, client).CreateBooking(create_request(place.id, (start, start + timedelta(hours=1))))
    not_done = await fail(
        As(bstub, client).CreateReview(bpb.CreateReviewRequest(request_id=rid(), booking_id=open_booking.id, rating=5))
    )
    assert refused(not_done) == ("FAILED_PRECONDITION", "BOOKING_NOT_REVIEWABLE")

    booking = await _completed_booking(bstub, astub, booking_server, place, client, days=51)
    with booking_clock(booking_server, timedelta(days=52)):
        stranger = await fail(
            As(bstub, user()).CreateReview(bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=5))
        )
        assert refused(stranger) == ("NOT_FOUND", "BOOKING_NOT_FOUND")
        by_host = await fail(
            As(bstub, host).CreateReview(bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=5))
        )
        assert refused(by_host) == ("PERMISSION_DENIED", "NOT_BOOKING_CLIENT")
        bad = await fail(
            As(bstub, client).CreateReview(bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=6))
        )
        assert refused(bad) == ("INVALID_ARGUMENT", "INVALID_RATING")
        review = await As(bstub, client).CreateReview(
            bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=4, text="Nice and quiet")
        )
        again = await As(bstub, client).CreateReview(
            bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=4, text="Nice and quiet")
        )
        assert again.id == review.id
        second = await fail(
            As(bstub, client).CreateReview(
                bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=1, text="changed my mind")
            )
        )
        assert refused(second) == ("FAILED_PRECONDITION", "REVIEW_ALREADY_EXISTS")
    assert review.rating == 4 and review.place_id == place.id and review.host_id == host.user_id
    assert_lock_budget(lock_readings(), "CreateReview")


async def test_host_replies_once_agent_hides_and_the_aggregate_moves_by_increments(
    bstub, astub, booking_server, admin_sql, lock_readings
):
    host = user("host")
    place = await make_place(astub, host)
    first_client, second_client = user(), user()
    first = await _completed_booking(bstub, astub, booking_server, place, first_client, days=53)
    second = await _completed_booking(bstub, astub, booking_server, place, second_client, days=54)
    with booking_clock(booking_server, timedelta(days=56)):
        review = await As(bstub, first_client).CreateReview(
            bpb.CreateReviewRequest(request_id=rid(), booking_id=first.id, rating=4, text="good")
        )
        assert await _rating(admin_sql, place.id) == (4, 1)
        # Planted offset: an incremental update keeps it, a recount over the reviews would erase it.
        await admin_sql.execute(
            "UPDATE booking.place_ratings SET rating_sum = rating_sum + 100 WHERE place_id = $1::uuid", place.id
        )
        await As(bstub, second_client).CreateReview(
            bpb.CreateReviewRequest(request_id=rid(), booking_id=second.id, rating=2, text="meh")
        )
        assert await _rating(admin_sql, place.id) == (106, 2)

        reply = bpb.ReplyToReviewRequest(request_id=rid(), review_id=review.id, text="Thank you!")
        replied = await As(bstub, host).ReplyToReview(reply)
        assert replied.reply.text == "Thank you!" and replied.reply.author_id == host.user_id
        assert (await As(bstub, host).ReplyToReview(reply)).reply.text == "Thank you!"  # a retry
        twice = await fail(
            As(bstub, host).ReplyToReview(bpb.ReplyToReviewRequest(request_id=rid(), review_id=review.id, text="More"))
        )
        assert refused(twice) == ("FAILED_PRECONDITION", "REVIEW_ALREADY_REPLIED")
        not_host = await fail(
            As(bstub, user("host")).ReplyToReview(
                bpb.ReplyToReviewRequest(request_id=rid(), review_id=review.id, text="Hi")
            )
        )
        assert refused(not_host) == ("PERMISSION_DENIED", "NOT_PLACE_OWNER")

        hide = bpb.HideReviewRequest(request_id=rid(), review_id=review.id, reason="personal data")
        by_host = await fail(As(bstub, host).HideReview(hide))
        assert refused(by_host) == ("PERMISSION_DENIED", "NOT_OPERATOR")
        hidden = await As(bstub, AGENT).HideReview(hide)
        assert hidden.hidden and hidden.hide_reason == "personal data"
        assert (await As(bstub, AGENT).HideReview(hide)).hidden  # hiding again changes nothing
    assert await _rating(admin_sql, place.id) == (102, 1)

    public = await As(bstub, user()).ListReviews(bpb.ListReviewsRequest(place_id=place.id))
    assert [r.rating for r in public.reviews] == [2]
    everything = await As(bstub, AGENT).ListReviews(bpb.ListReviewsRequest(place_id=place.id, include_hidden=True))
    assert sorted(r.rating for r in everything.reviews) == [2, 4]
    not_agent = await fail(As(bstub, host).ListReviews(bpb.ListReviewsRequest(place_id=place.id, include_hidden=True)))
    assert refused(not_agent) == ("PERMISSION_DENIED", "NOT_OPERATOR")

    events = await admin_sql.fetch(
        "SELECT event_type FROM booking.outbox WHERE aggregate_id = $1 ORDER BY id", review.id
    )
    assert [e["event_type"] for e in events] == ["review.created", "review.hidden"]
    assert_lock_budget(lock_readings(), "CreateReview", "ReplyToReview", "HideReview", "ListReviews")


async def test_reviews_reach_the_place_s_rating_in_availability_once_each(
    bstub, astub, booking_server, redis_namespace
):
    """Availability reads booking's review events (its own consumer group) and applies each once: the
    place's rating, which search filters and sorts by, follows reviews and their hiding."""
    place = await make_place(astub, user("host"))
    clients = [user(), user()]
    bookings = [
        await _completed_booking(bstub, astub, booking_server, place, client, days=57 + i)
        for i, client in enumerate(clients)
    ]
    with booking_clock(booking_server, timedelta(days=60)):
        reviews = [
            await As(bstub, client).CreateReview(
                bpb.CreateReviewRequest(request_id=rid(), booking_id=booking.id, rating=rating, text="ok")
            )
            for client, booking, rating in zip(clients, bookings, (5, 2), strict=True)
        ]

    async def rated(count: int, average: float):
        got = await astub.GetPlace(apb.GetPlaceRequest(id=place.id))
        return got if (got.rating_count, round(got.rating_average, 2)) == (count, average) else None

    relay = booking_server.runtime.relay()  # these tests' booking server runs no workers: publish by hand

    async def published_and(count: int, average: float):
        while await relay.publish_batch():
            pass
        return await rated(count, average)

    await wait_until(lambda: published_and(2, 3.5))
    await As(bstub, AGENT).HideReview(bpb.HideReviewRequest(request_id=rid(), review_id=reviews[0].id, reason="spam"))
    await wait_until(lambda: published_and(1, 2.0))
    # Nothing is applied twice: the count stays once the ratings group has read every event.
    redis = booking_server.runtime.redis
    stream = stream_name(redis_namespace, "booking")
    [(last, _)] = await redis.xrevrange(stream, count=1)
    await wait_until(lambda: consumed_through(redis, stream, last.decode(), group="availability-ratings"))
    assert await rated(1, 2.0)
