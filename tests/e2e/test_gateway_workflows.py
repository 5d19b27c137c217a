"""Booking workflows beyond create/approve/cancel through the gateway: reschedule, no-show and
completion, reviews of a completed booking (reply, hide), the waitlist, recurring series; and the
agents' notification tools (announcements, dead letters). Each with its authorization matrix and an
error mapping.

A booking that has started or ended is reached without waiting (the finest slot is 5 minutes, so a
real one would take up to 10): its ranges are moved into the past in the booking service's tables,
the stand-in for time passing. Its `due_time` is left alone so the completion sweeper does not race
the verb under test. Nothing a client sends can move time."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from gateway_e2e_support import PASSWORD, agent, assert_problem, auth, login, new_place, new_user, slot

from kit.cache import make_redis
from kit.provision import admin_dsn

pytestmark = [pytest.mark.xdist_group("e2e"), pytest.mark.asyncio]

WAIT_S = 60.0  # bound of every wait for background work (announcement delivery, dead-lettering)


@pytest.fixture
async def admin_sql(infra, database):
    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database), timeout=10)
    yield conn
    await conn.close()


@pytest.fixture
async def redis(infra):
    client = make_redis(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
async def staff(gateway_url):
    """An agent of this module's own, so its calls do not count against the shared bootstrap agent's
    per-user rate limit (which the schemathesis run may just have used up: creating this one waits
    for Retry-After, a bounded number of times)."""
    email = f"agent{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "E2E Agent", "roles": ["agent"]}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as api:
        bootstrap = await agent(api)
        for _ in range(5):
            created = await api.post("/v1/users", json=body, headers=auth(bootstrap))
            if created.status_code != 429:
                break
            await asyncio.sleep(min(float(created.headers.get("Retry-After", "1")), 30.0))
        assert created.status_code == 201, created.text
        return {**created.json(), **await login(api, email, PASSWORD)}


async def eventually(probe, timeout_s: float = WAIT_S, interval_s: float = 0.5):
    """The first truthy result of `probe()`, polling until `timeout_s` (then the test fails)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"still not there after {timeout_s} s"
        await asyncio.sleep(interval_s)


async def book(api, client, place, when=None, key=None):
    body = {"place_id": place["id"], "ranges": [when or slot()], "guests": 2, "payment_method_token": "tok_success"}
    headers = auth(client) | ({"Idempotency-Key": key} if key else {})
    created = await api.post("/v1/bookings", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "CONFIRMED", created.text
    return created.json()


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def move_into_the_past(admin_sql, booking_id: str, *, start_ago: timedelta) -> None:
    """Shift the booking's ranges so that its first range started `start_ago` ago."""
    ranges = json.loads(await admin_sql.fetchval("SELECT ranges FROM booking.bookings WHERE id = $1", booking_id))
    shift = datetime.fromisoformat(ranges[0][0]) - (datetime.now(UTC) - start_ago)
    moved = [[(datetime.fromisoformat(s) - shift).isoformat(), (datetime.fromisoformat(e) - shift).isoformat()]
             for s, e in ranges]  # fmt: skip
    async with admin_sql.transaction():
        await admin_sql.execute(
            "UPDATE booking.bookings SET ranges = $2::jsonb,"
            " first_start = first_start - $3::interval, last_end = last_end - $3::interval WHERE id = $1",
            booking_id,
            json.dumps(moved),
            shift,
        )
        await admin_sql.execute(
            "UPDATE booking.booking_ranges"
            " SET during = tstzrange(lower(during) - $2::interval, upper(during) - $2::interval) WHERE booking_id = $1",
            booking_id,
            shift,
        )


# --- reschedule ---------------------------------------------------------------------------------


async def test_a_client_reschedules_a_confirmed_booking_and_the_old_time_frees_up(api):
    host, client, other = await new_user(api, "host"), await new_user(api), await new_user(api)
    place = await new_place(api, host)
    old, new = slot(days_ahead=40), slot(days_ahead=41)
    booking = await book(api, client, place, old)

    stranger = await api.post(f"/v1/bookings/{booking['id']}:reschedule", json={"ranges": [new]}, headers=auth(other))
    assert_problem(stranger, 403, 404)
    stale = await api.post(
        f"/v1/bookings/{booking['id']}:reschedule",
        json={"ranges": [new]},
        headers=auth(client) | {"If-Match": '"stale-etag"'},
    )
    assert_problem(stale, 412, code="CONCURRENT_MODIFICATION")

    moved = await api.post(
        f"/v1/bookings/{booking['id']}:reschedule",
        json={"ranges": [new]},
        headers=auth(client) | {"If-Match": booking["etag"]},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "CONFIRMED"
    assert _at(moved.json()["ranges"][0]["start_time"]) == _at(new["start_time"])
    assert moved.json()["etag"] != booking["etag"]
    # The old time is bookable by anyone again; the new one is taken.
    await book(api, other, place, old)
    taken = await api.post(
        "/v1/bookings",
        json={"place_id": place["id"], "ranges": [new], "guests": 1, "payment_method_token": "tok_success"},
        headers=auth(other),
    )
    assert_problem(taken, 409, code="SLOT_UNAVAILABLE")


# --- no-show, completion, reviews ---------------------------------------------------------------


async def test_the_host_marks_a_started_booking_as_a_no_show_and_nobody_else_can(api, admin_sql, staff):
    host, other_host, client = await new_user(api, "host"), await new_user(api, "host"), await new_user(api)
    place = await new_place(api, host)
    booking = await book(api, client, place)
    url = f"/v1/bookings/{booking['id']}:markNoShow"

    not_started = await api.post(url, json={"reason": "too early"}, headers=auth(host))
    assert_problem(not_started, 409, code="ILLEGAL_STATUS_TRANSITION")
    await move_into_the_past(admin_sql, booking["id"], start_ago=timedelta(minutes=20))

    assert_problem(await api.post(url, headers=auth(client)), 403, code="ROLE_REQUIRED")
    assert_problem(await api.post(url, headers=auth(other_host)), 403, 404)
    assert_problem(await api.post(url, headers=auth(staff)), 403, code="NOT_PLACE_OWNER")
    assert_problem(await api.post(url, headers={}), 401)

    key = {"Idempotency-Key": uuid.uuid4().hex}
    marked = await api.post(url, json={"reason": "never came"}, headers=auth(host) | key)
    assert marked.status_code == 200, marked.text
    assert marked.json()["status"] == "NO_SHOW"
    again = await api.post(url, json={"reason": "never came"}, headers=auth(host) | key)
    assert again.status_code == 200 and again.json()["status"] == "NO_SHOW"
    details = await api.get(f"/v1/bookings/{booking['id']}", headers=auth(client))
    last = details.json()["history"][-1]
    assert (last["to_status"], last["actor_id"], last["reason"]) == ("NO_SHOW", host["id"], "never came")
    # A no-show is final: nobody cancels it for a refund.
    assert_problem(await api.post(f"/v1/bookings/{booking['id']}:cancel", headers=auth(client)), 409)


async def test_an_agent_completes_an_ended_booking_then_its_client_reviews_it(api, admin_sql, staff):
    host, other_host, client, other = (
        await new_user(api, "host"),
        await new_user(api, "host"),
        await new_user(api),
        await new_user(api),
    )
    place = await new_place(api, host)
    booking = await book(api, client, place)
    url = f"/v1/bookings/{booking['id']}:complete"

    assert_problem(await api.post(url, headers=auth(staff)), 409, code="ILLEGAL_STATUS_TRANSITION")
    review_body = {"booking_id": booking["id"], "rating": 4, "text": "Quiet and bright."}
    not_done = await api.post("/v1/reviews", json=review_body, headers=auth(client))
    assert_problem(not_done, 409, code="BOOKING_NOT_REVIEWABLE")
    await move_into_the_past(admin_sql, booking["id"], start_ago=timedelta(hours=3))  # a 2 h booking: ended

    assert_problem(await api.post(url, headers=auth(client)), 403, code="ROLE_REQUIRED")
    assert_problem(await api.post(url, headers=auth(host)), 403, code="ROLE_REQUIRED")
    completed = await api.post(url, headers=auth(staff))
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "COMPLETED"
    details = await api.get(f"/v1/bookings/{booking['id']}", headers=auth(client))
    assert details.json()["history"][-1]["actor_id"] == staff["id"]

    # Reviews: only the client of the booking, once.
    assert_problem(await api.post("/v1/reviews", json=review_body, headers=auth(other)), 403, 404)
    created = await api.post("/v1/reviews", json=review_body, headers=auth(client))
    assert created.status_code == 201, created.text
    review = created.json()
    assert (review["rating"], review["booking_id"], review["hidden"]) == (4, booking["id"], False)
    twice = await api.post("/v1/reviews", json=review_body | {"rating": 1}, headers=auth(client))
    assert_problem(twice, 409, code="REVIEW_ALREADY_EXISTS")
    listed = await api.get(f"/v1/places/{place['id']}/reviews", headers=auth(other))
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["reviews"]] == [review["id"]]

    # Replies: the place's host only.
    reply_url = f"/v1/reviews/{review['id']}:reply"
    assert_problem(await api.post(reply_url, json={"text": "Mine now"}, headers=auth(other_host)), 403, 404)
    replied = await api.post(reply_url, json={"text": "Thank you, come again!"}, headers=auth(host))
    assert replied.status_code == 200, replied.text
    assert replied.json()["reply"]["text"] == "Thank you, come again!"
    assert replied.json()["reply"]["author_id"] == host["id"]

    # Hiding: agents only; a hidden review leaves the public list, agents still see it.
    hide_url = f"/v1/reviews/{review['id']}:hide"
    assert_problem(await api.post(hide_url, json={"reason": "spam"}, headers=auth(host)), 403)
    hidden = await api.post(hide_url, json={"reason": "off-topic"}, headers=auth(staff))
    assert hidden.status_code == 200, hidden.text
    assert (hidden.json()["hidden"], hidden.json()["hide_reason"]) == (True, "off-topic")
    public = await api.get(f"/v1/places/{place['id']}/reviews", headers=auth(other))
    assert public.json()["reviews"] == []
    everything = await api.get(
        f"/v1/places/{place['id']}/reviews", params={"include_hidden": True}, headers=auth(staff)
    )
    assert [r["id"] for r in everything.json()["reviews"]] == [review["id"]]
    assert_problem(
        await api.get(f"/v1/places/{place['id']}/reviews", params={"include_hidden": True}, headers=auth(other)),
        403,
    )


# --- waitlist -----------------------------------------------------------------------------------


async def test_a_client_waits_for_a_taken_range_is_offered_it_and_leaves(api):
    host, other_host = await new_user(api, "host"), await new_user(api, "host")
    holder, waiter, stranger = await new_user(api), await new_user(api), await new_user(api)
    place = await new_place(api, host)
    when = slot()
    booking = await book(api, holder, place, when)

    joined = await api.post(
        "/v1/waitlist", json={"place_id": place["id"], "range": when, "guests": 2}, headers=auth(waiter)
    )
    assert joined.status_code == 201, joined.text
    entry = joined.json()
    assert (entry["state"], entry["position"], entry["client_id"]) == ("WAITING", 1, waiter["id"])

    mine = await api.get("/v1/waitlist", headers=auth(waiter))
    assert mine.status_code == 200, mine.text
    assert [e["id"] for e in mine.json()["entries"]] == [entry["id"]]
    hosts = await api.get("/v1/waitlist", params={"place_id": place["id"]}, headers=auth(host))
    assert [e["id"] for e in hosts.json()["entries"]] == [entry["id"]]
    for outsider in (other_host, stranger):
        listed = await api.get("/v1/waitlist", params={"place_id": place["id"]}, headers=auth(outsider))
        assert_problem(listed, 403, 404)
    theirs = await api.get("/v1/waitlist", params={"client_id": waiter["id"]}, headers=auth(stranger))
    assert_problem(theirs, 403, 404)

    # The holder cancels: the first waiter is offered the range.
    cancelled = await api.post(f"/v1/bookings/{booking['id']}:cancel", headers=auth(holder))
    assert cancelled.status_code == 200, cancelled.text
    offered = await api.get("/v1/waitlist", headers=auth(waiter))
    [now] = offered.json()["entries"]
    assert now["state"] == "OFFERED" and now["offer_expire_time"]

    assert_problem(await api.post(f"/v1/waitlist/{entry['id']}:leave", headers=auth(stranger)), 404)
    left = await api.post(f"/v1/waitlist/{entry['id']}:leave", headers=auth(waiter))
    assert left.status_code == 200, left.text
    assert left.json()["state"] == "LEFT"
    assert (await api.get("/v1/waitlist", headers=auth(waiter))).json()["entries"] == []
    history = await api.get("/v1/waitlist", params={"state": ["LEFT"]}, headers=auth(waiter))
    assert [e["id"] for e in history.json()["entries"]] == [entry["id"]]
    # Leaving released the offered hold: the range is bookable by anyone.
    await book(api, stranger, place, when)


async def test_the_offered_waiter_takes_the_offer_and_nobody_else_can(api):
    host = await new_user(api, "host")
    holder, waiter, stranger = [await new_user(api) for _ in range(3)]
    place = await new_place(api, host)
    when = slot()
    booking = await book(api, holder, place, when)
    joined = await api.post(
        "/v1/waitlist", json={"place_id": place["id"], "range": when, "guests": 2}, headers=auth(waiter)
    )
    assert joined.status_code == 201, joined.text
    assert (await api.post(f"/v1/bookings/{booking['id']}:cancel", headers=auth(holder))).status_code == 200
    [offer] = (await api.get("/v1/waitlist", headers=auth(waiter))).json()["entries"]
    assert offer["state"] == "OFFERED"

    body = {"place_id": place["id"], "ranges": [when], "guests": 2, "payment_method_token": "tok_success"}
    taken_by_other = await api.post("/v1/bookings", json=body, headers=auth(stranger))
    assert_problem(taken_by_other, 409, code="SLOT_UNAVAILABLE")  # the offer holds it for the waiter
    with_offer = body | {"waitlist_entry_id": offer["id"]}
    assert_problem(await api.post("/v1/bookings", json=with_offer, headers=auth(stranger)), 404)
    taken = await api.post("/v1/bookings", json=with_offer, headers=auth(waiter))
    assert taken.status_code == 201 and taken.json()["status"] == "CONFIRMED", taken.text
    history = await api.get("/v1/waitlist", params={"state": ["FULFILLED"]}, headers=auth(waiter))
    assert [e["id"] for e in history.json()["entries"]] == [offer["id"]]


async def test_waitlist_input_errors_are_422(api):
    host, client = await new_user(api, "host"), await new_user(api)
    place = await new_place(api, host)
    past = {"start_time": "2020-01-01T10:00:00Z", "end_time": "2020-01-01T11:00:00Z"}
    joined = await api.post(
        "/v1/waitlist", json={"place_id": place["id"], "range": past, "guests": 2}, headers=auth(client)
    )
    assert_problem(joined, 422, code="INVALID_TIME_RANGE")
    free = await api.post(
        "/v1/waitlist", json={"place_id": place["id"], "range": slot(), "guests": 2}, headers=auth(client)
    )
    assert_problem(free, 409, code="SLOT_AVAILABLE")  # nothing to wait for: book it
    both = await api.get(
        "/v1/waitlist", params={"place_id": place["id"], "client_id": client["id"]}, headers=auth(host)
    )
    assert_problem(both, 422)
    bad_cursor = await api.get("/v1/waitlist", params={"page_token": "bm90LWEtY3Vyc29y"}, headers=auth(client))
    assert_problem(bad_cursor, 422, code="INVALID_PAGE_TOKEN")
    assert_problem(await api.get("/v1/waitlist"), 401)


# --- recurring series ---------------------------------------------------------------------------


def _series_body(place, first, **extra):
    return {
        "place_id": place["id"],
        "first_occurrence": first,
        "recurrence": {"frequency": "WEEKLY", "count": 3},
        "guests": 2,
        "payment_method_token": "tok_success",
    } | extra


async def test_a_weekly_series_books_every_occurrence_once(api):
    host, client = await new_user(api, "host"), await new_user(api)
    place = await new_place(api, host)
    first = slot(days_ahead=60)
    key = uuid.uuid4().hex
    created = await api.post(
        "/v1/bookings:createRecurring", json=_series_body(place, first), headers=auth(client) | {"Idempotency-Key": key}
    )
    assert created.status_code == 201, created.text
    series = created.json()
    starts = [_at(b["ranges"][0]["start_time"]) for b in series["booked"]]
    assert starts == [_at(first["start_time"]) + timedelta(days=7 * i) for i in range(3)]
    assert {b["status"] for b in series["booked"]} == {"CONFIRMED"}
    assert {b["series_id"] for b in series["booked"]} == {series["series_id"]} and series["conflicts"] == []
    again = await api.post(
        "/v1/bookings:createRecurring", json=_series_body(place, first), headers=auth(client) | {"Idempotency-Key": key}
    )
    assert again.status_code == 201, again.text
    assert again.json()["series_id"] == series["series_id"]
    assert [b["id"] for b in again.json()["booked"]] == [b["id"] for b in series["booked"]]
    mine = await api.get("/v1/bookings", params={"place_id": place["id"]}, headers=auth(client))
    assert sorted(b["id"] for b in mine.json()["bookings"]) == sorted(b["id"] for b in series["booked"])


async def test_a_series_with_a_taken_occurrence_is_409_or_partial(api):
    host, client, early = await new_user(api, "host"), await new_user(api), await new_user(api)
    place = await new_place(api, host)
    first = slot(days_ahead=90)
    second = {k: (_at(v) + timedelta(days=7)).isoformat() for k, v in first.items()}
    await book(api, early, place, second)

    whole = await api.post("/v1/bookings:createRecurring", json=_series_body(place, first), headers=auth(client))
    body = assert_problem(whole, 409, code="SLOT_UNAVAILABLE")
    assert [_at(r["start_time"]) for r in body["conflicting_ranges"]] == [_at(second["start_time"])]
    partial = await api.post(
        "/v1/bookings:createRecurring", json=_series_body(place, first, allow_partial=True), headers=auth(client)
    )
    assert partial.status_code == 201, partial.text
    assert len(partial.json()["booked"]) == 2
    assert [_at(r["start_time"]) for r in partial.json()["conflicts"]] == [_at(second["start_time"])]


async def test_series_errors_are_mapped(api):
    host, client = await new_user(api, "host"), await new_user(api)
    requested = await new_place(api, host, mode="REQUEST")
    refused = await api.post("/v1/bookings:createRecurring", json=_series_body(requested, slot()), headers=auth(client))
    assert_problem(refused, 409, code="RECURRING_NOT_SUPPORTED")
    instant = await new_place(api, host)
    both = _series_body(instant, slot(), recurrence={"frequency": "DAILY", "count": 3, "until": "2099-01-01T00:00:00Z"})
    assert_problem(
        await api.post("/v1/bookings:createRecurring", json=both, headers=auth(client)), 422, code="INVALID_RECURRENCE"
    )
    once = _series_body(instant, slot(), recurrence={"frequency": "DAILY", "count": 1})
    assert_problem(await api.post("/v1/bookings:createRecurring", json=once, headers=auth(client)), 422)
    unknown = _series_body(instant, slot(), place_id=str(uuid.uuid4()))
    assert_problem(await api.post("/v1/bookings:createRecurring", json=unknown, headers=auth(client)), 404)
    assert_problem(await api.post("/v1/bookings:createRecurring", json=_series_body(instant, slot())), 401)


# --- announcements ------------------------------------------------------------------------------


async def test_an_agent_announces_to_chosen_users_and_follows_the_delivery(api, staff):
    reader, bystander = await new_user(api), await new_user(api)
    subject = f"Maintenance window {uuid.uuid4().hex[:6]}"
    body = {"subject": subject, "body": "The site is read-only on Sunday.", "filter": {"user_ids": [reader["id"]]}}
    for role in ("client", "host"):
        user = reader if role == "client" else await new_user(api, "host")
        assert_problem(await api.post("/v1/announcements", json=body, headers=auth(user)), 403)

    sent = await api.post("/v1/announcements", json=body, headers=auth(staff))
    assert sent.status_code == 201, sent.text
    announcement = sent.json()
    assert announcement["state"] in ("PENDING", "SENDING", "COMPLETED")
    assert announcement["filter"] == {"roles": [], "user_ids": [reader["id"]]}
    assert announcement["created_by"] == staff["id"]

    async def delivered():
        got = await api.get(f"/v1/announcements/{announcement['id']}", headers=auth(staff))
        assert got.status_code == 200, got.text
        return got.json() if got.json()["state"] == "COMPLETED" else None

    done = await eventually(delivered)
    assert (done["total"], done["sent_count"], done["failed_count"]) == (1, 1, 0) and done["complete_time"]
    inbox = await api.get("/v1/notifications", headers=auth(reader))
    assert subject in [n["subject"] for n in inbox.json()["notifications"]]
    others = await api.get("/v1/notifications", headers=auth(bystander))
    assert subject not in [n["subject"] for n in others.json()["notifications"]]

    assert_problem(await api.get(f"/v1/announcements/{announcement['id']}", headers=auth(reader)), 403)
    missing = await api.get(f"/v1/announcements/{uuid.uuid4()}", headers=auth(staff))
    assert_problem(missing, 404, code="ANNOUNCEMENT_NOT_FOUND")
    empty = await api.post("/v1/announcements", json=body | {"subject": ""}, headers=auth(staff))
    assert_problem(empty, 422)


async def test_an_announcement_to_a_role_follows_role_changes_made_at_the_gateway(api, staff):
    host = await new_user(api, "host")
    body = {"subject": f"Hosts {uuid.uuid4().hex[:6]}", "body": "For hosts.", "filter": {"roles": ["host"]}}
    body["filter"]["user_ids"] = [host["id"]]  # both: the host, if notifications sees the host role

    async def audience() -> int:
        sent = await api.post("/v1/announcements", json=body, headers=auth(staff))
        assert sent.status_code == 201, sent.text

        async def counted():
            got = (await api.get(f"/v1/announcements/{sent.json()['id']}", headers=auth(staff))).json()
            return got if got["state"] == "COMPLETED" else None

        return (await eventually(counted))["total"]

    assert await audience() == 1
    demoted = await api.patch(f"/v1/users/{host['id']}", json={"roles": ["client"]}, headers=auth(staff))
    assert demoted.status_code == 200, demoted.text
    # The gateway told notifications the new roles: the host is one no more.
    assert await audience() == 0


# --- dead letters -------------------------------------------------------------------------------


async def _dead_letters(api, staff, **params) -> list[dict]:
    """Every page of the dead-letter list (a cursor walk)."""
    found, token = [], None
    while True:
        page = await api.get(
            "/v1/dead-letters", params=params | {"page_size": 50} | ({"page_token": token} if token else {}),
            headers=auth(staff),
        )  # fmt: skip
        assert page.status_code == 200, page.text
        found += page.json()["dead_letters"]
        token = page.json()["next_page_token"]
        if not token:
            return found


async def test_an_unreadable_event_becomes_a_dead_letter_that_agents_list_and_replay(
    api, staff, redis, redis_namespace
):
    raw = b"\xff\xfe not an envelope " + uuid.uuid4().bytes
    await redis.xadd(f"{redis_namespace}:events:booking", {"envelope": raw})
    encoded = base64.b64encode(raw).decode()

    async def listed():
        return [d for d in await _dead_letters(api, staff) if d["envelope"] == encoded]

    [letter] = await eventually(listed)
    assert letter["state"] == "PENDING" and letter["error"].startswith("MALFORMED_ENVELOPE")
    assert letter["stream"] == f"{redis_namespace}:events:booking" and letter["consumer_group"] == "notifications"

    client = await new_user(api)
    assert_problem(await api.get("/v1/dead-letters", headers=auth(client)), 403)
    url = f"/v1/dead-letters/{letter['id']}:replay"
    assert_problem(await api.post(url, headers=auth(client)), 403)

    replayed = await api.post(url, headers=auth(staff) | {"Idempotency-Key": f"replay-{letter['id']}"})
    assert replayed.status_code == 200, replayed.text
    # Still unreadable: the replay fails again, and says why.
    assert replayed.json()["state"] == "REPLAY_FAILED" and replayed.json()["error"].startswith("MALFORMED_ENVELOPE")
    assert replayed.json()["replay_time"]
    failed = await _dead_letters(api, staff, state=["REPLAY_FAILED"])
    assert letter["id"] in [d["id"] for d in failed]
    assert letter["id"] not in [d["id"] for d in await _dead_letters(api, staff, state=["PENDING"])]

    missing = await api.post(f"/v1/dead-letters/{uuid.uuid4()}:replay", headers=auth(staff))
    assert_problem(missing, 404, code="DEAD_LETTER_NOT_FOUND")
    bad_cursor = await api.get("/v1/dead-letters", params={"page_token": "bm90LWEtY3Vyc29y"}, headers=auth(staff))
    assert_problem(bad_cursor, 422, code="INVALID_PAGE_TOKEN")
