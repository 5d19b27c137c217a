"""Places through the gateway: create, read, list and walk pages, update with If-Match, free
slots, search, iCalendar, delete; and who may not touch someone else's place."""

import uuid

import pytest
from gateway_e2e_support import agent, assert_problem, auth, new_place, new_user, place_body, slot

pytestmark = [pytest.mark.xdist_group("e2e"), pytest.mark.asyncio]


async def test_a_host_creates_a_place_and_reads_it_with_its_etag(api):
    host = await new_user(api, "host")
    place = await new_place(api, host, title="Sunny room")
    assert place["owner_id"] == host["id"] and place["active"] is True and place["title"] == "Sunny room"
    fetched = await api.get(f"/v1/places/{place['id']}", headers=auth(host))
    assert fetched.status_code == 200 and fetched.json()["id"] == place["id"]
    assert fetched.headers["etag"] == fetched.json()["etag"]


async def test_a_client_cannot_create_a_place(api):
    client = await new_user(api, "client")
    assert_problem(await api.post("/v1/places", json=place_body(), headers=auth(client)), 403, code="ROLE_REQUIRED")


async def test_invalid_place_input_is_422_naming_the_problem(api):
    host = await new_user(api, "host")
    bad_zone = await api.post("/v1/places", json=place_body(time_zone="Mars/Base"), headers=auth(host))
    assert_problem(bad_zone, 422)
    wrong_type = await api.post("/v1/places", json=place_body(capacity="many"), headers=auth(host))
    assert ["body", "capacity"] in [e["loc"] for e in assert_problem(wrong_type, 422)["errors"]]


async def test_listing_a_hosts_places_walks_every_page_once(api):
    host = await new_user(api, "host")
    created = {(await new_place(api, host))["id"] for _ in range(5)}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"owner_id": host["id"], "page_size": 2} | ({"page_token": cursor} if cursor else {})
        page = await api.get("/v1/places", params=params, headers=auth(host))
        assert page.status_code == 200, page.text
        seen += [p["id"] for p in page.json()["places"]]
        cursor, pages = page.json()["next_page_token"], pages + 1
        if not cursor:
            break
    assert sorted(seen) == sorted(created) and pages == 3


async def test_an_update_with_a_stale_if_match_is_412(api):
    host = await new_user(api, "host")
    place = await new_place(api, host)
    etag = place["etag"]
    first = await api.patch(
        f"/v1/places/{place['id']}", json={"title": "Renamed"}, headers=auth(host) | {"If-Match": etag}
    )
    assert first.status_code == 200 and first.json()["title"] == "Renamed"
    stale = await api.patch(
        f"/v1/places/{place['id']}", json={"title": "Again"}, headers=auth(host) | {"If-Match": etag}
    )
    assert_problem(stale, 412, code="CONCURRENT_MODIFICATION")


async def test_another_host_can_neither_update_nor_delete_nor_export_a_place(api):
    owner, other = await new_user(api, "host"), await new_user(api, "host")
    place = await new_place(api, owner)
    update = await api.patch(f"/v1/places/{place['id']}", json={"title": "Mine now"}, headers=auth(other))
    assert_problem(update, 403, 404)
    assert_problem(await api.delete(f"/v1/places/{place['id']}", headers=auth(other)), 403, 404)
    assert_problem(await api.get(f"/v1/places/{place['id']}/calendar.ics", headers=auth(other)), 403, 404)
    unchanged = await api.get(f"/v1/places/{place['id']}", headers=auth(owner))
    assert unchanged.json()["title"] == place["title"] and unchanged.json()["active"] is True


async def test_free_slots_and_search_find_an_open_place(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) + timedelta(days=5)).date()
    slots = await api.get(
        f"/v1/places/{place['id']}/free-slots",
        params={"start_date": day.isoformat(), "end_date": day.isoformat(), "duration_minutes": 60, "page_size": 5},
        headers=auth(client),
    )
    assert slots.status_code == 200, slots.text
    assert len(slots.json()["slots"]) == 5 and slots.json()["next_page_token"]
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    found = await api.get(
        "/v1/search",
        params={
            "city": place["city"],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(days=1)).isoformat(),
            "duration_minutes": 120,
        },
        headers=auth(client),
    )
    assert found.status_code == 200, found.text
    assert [r["place"]["id"] for r in found.json()["results"]] == [place["id"]]


async def test_the_owner_exports_the_calendar_and_deletes_the_place(api):
    host = await new_user(api, "host")
    place = await new_place(api, host)
    ics = await api.get(f"/v1/places/{place['id']}/calendar.ics", headers=auth(host))
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert ics.text.startswith("BEGIN:VCALENDAR")
    deleted = await api.delete(f"/v1/places/{place['id']}", headers=auth(host))
    assert deleted.status_code == 200 and deleted.json()["active"] is False


async def test_a_calendar_app_reads_the_feed_through_its_link_until_it_is_replaced_or_removed(api):
    """Calendar apps cannot send a bearer token: the owner makes a link with a secret in it."""
    host, other_host, client = await new_user(api, "host"), await new_user(api, "host"), await new_user(api, "client")
    place, elsewhere = await new_place(api, host), await new_place(api, host)
    blocked = await api.post(
        f"/v1/places/{place['id']}/blocks", json={"ranges": [slot(5)], "reason": "painting"}, headers=auth(host)
    )
    assert blocked.status_code in (200, 201), blocked.text
    feed = f"/v1/places/{place['id']}/calendar-feed"

    made = await api.post(feed, headers=auth(host) | {"Idempotency-Key": "feed-1"})
    assert made.status_code == 201, made.text
    link = made.json()["url"]
    assert link.startswith(str(api.base_url).rstrip("/") + f"/v1/places/{place['id']}/calendar.ics?token=")
    again = await api.post(feed, headers=auth(host) | {"Idempotency-Key": "feed-1"})
    assert again.json()["url"] == link  # a retried request answers the same link, not a new one

    read = await api.get(link)  # no bearer token
    assert read.status_code == 200 and read.headers["content-type"].startswith("text/calendar")
    assert read.text.startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in read.text

    secret = link.split("token=")[1]
    wrong_place = await api.get(f"/v1/places/{elsewhere['id']}/calendar.ics?token={secret}")
    assert_problem(wrong_place, 401, code="INVALID_FEED_LINK")
    assert_problem(await api.get(link[:-4] + "AAAA"), 401, code="INVALID_FEED_LINK")
    assert_problem(await api.post(feed, headers=auth(other_host)), 403, 404)  # not theirs
    assert_problem(await api.post(feed, headers=auth(client)), 403)

    replaced = (await api.post(feed, headers=auth(host))).json()["url"]
    assert replaced != link
    assert_problem(await api.get(link), 401, code="INVALID_FEED_LINK")
    assert (await api.get(replaced)).status_code == 200

    removed = await api.delete(feed, headers=auth(host))
    assert removed.status_code == 204
    assert_problem(await api.get(replaced), 401, code="INVALID_FEED_LINK")
    assert_problem(await api.delete(feed, headers=auth(host)), 404, code="CALENDAR_FEED_LINK_NOT_FOUND")


async def test_a_feed_link_stops_working_when_its_maker_is_deactivated(api):
    host = await new_user(api, "host")
    place = await new_place(api, host)
    link = (await api.post(f"/v1/places/{place['id']}/calendar-feed", headers=auth(host))).json()["url"]
    assert (await api.get(link)).status_code == 200
    deactivated = await api.post(f"/v1/users/{host['id']}:deactivate", headers=auth(await agent(api)))
    assert deactivated.status_code == 200, deactivated.text
    assert_problem(await api.get(link), 401, code="INVALID_FEED_LINK")


async def test_an_unknown_place_is_404_and_a_malformed_id_422(api):
    user = await new_user(api)
    assert_problem(
        await api.get("/v1/places/00000000-0000-4000-8000-000000000000", headers=auth(user)),
        404,
        code="PLACE_NOT_FOUND",
    )
    assert_problem(await api.get("/v1/places/not-a-uuid", headers=auth(user)), 422)


async def test_two_hosts_who_pick_the_same_idempotency_key_each_get_their_own_place(api):
    """Services keep request ids across users; the gateway makes each caller's key their own."""
    first, second = await new_user(api, "host"), await new_user(api, "host")
    key = {"Idempotency-Key": f"my-place-{uuid.uuid4().hex[:8]}"}
    body = place_body("INSTANT")
    mine = await api.post("/v1/places", json=body, headers=auth(first) | key)
    theirs = await api.post("/v1/places", json=body, headers=auth(second) | key)
    assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
    assert mine.json()["id"] != theirs.json()["id"]
    assert (mine.json()["owner_id"], theirs.json()["owner_id"]) == (first["id"], second["id"])
    # Each one's retry still answers their own place.
    again = await api.post("/v1/places", json=body, headers=auth(second) | key)
    assert again.json()["id"] == theirs.json()["id"]
