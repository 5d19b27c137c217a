"""Notifications (preferences set at registration, history, mark read), reports for agents (JSON,
dashboard, streamed CSV), the per-user rate limit, and the demo data loader."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from gateway_e2e_support import E2E_USER_RATE_LIMIT, agent, assert_problem, auth, new_place, new_user, slot

pytestmark = [pytest.mark.xdist_group("e2e"), pytest.mark.asyncio]


async def test_registration_shares_email_locale_and_time_zone_with_notifications(api):
    email = f"prefs{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "long enough pw", "name": "P", "locale": "de-DE", "time_zone": "Europe/Berlin"}
    assert (await api.post("/v1/auth/register", json=body)).status_code == 201
    tokens = (await api.post("/v1/auth/token", json={"email": email, "password": "long enough pw"})).json()
    prefs = await api.get("/v1/notifications/preferences", headers=auth(tokens))
    assert prefs.status_code == 200, prefs.text
    assert (prefs.json()["email"], prefs.json()["locale"], prefs.json()["time_zone"]) == (
        email,
        "de-DE",
        "Europe/Berlin",
    )


async def test_a_user_changes_preferences_and_bad_values_are_422(api):
    user = await new_user(api)
    changed = await api.patch(
        "/v1/notifications/preferences",
        json={"quiet_hours_start": {"hours": 22}, "quiet_hours_end": {"hours": 7}},
        headers=auth(user),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["quiet_hours_start"]["hours"] == 22
    bad = await api.patch("/v1/notifications/preferences", json={"phone": "12"}, headers=auth(user))
    assert_problem(bad, 422)


async def test_the_notification_history_pages_and_marks_read(api):
    user = await new_user(api)
    listed = await api.get("/v1/notifications", params={"page_size": 5}, headers=auth(user))
    assert listed.status_code == 200, listed.text
    assert set(listed.json()) == {"notifications", "unread_count", "next_page_token"}
    marked = await api.post("/v1/notifications:markRead", json={"ids": []}, headers=auth(user))
    assert marked.status_code == 200 and marked.json()["marked_count"] >= 0
    unread = await api.get("/v1/notifications", params={"unread_only": True}, headers=auth(user))
    assert unread.json()["unread_count"] == 0


async def test_a_user_cannot_read_another_users_notifications(api):
    user, other = await new_user(api), await new_user(api)
    reply = await api.get("/v1/notifications", params={"user_id": other["id"]}, headers=auth(user))
    assert_problem(reply, 403, 404)


async def test_agents_get_reports_and_a_streamed_csv_and_clients_do_not(api):
    staff, client, host = await agent(api), await new_user(api), await new_user(api, "host")
    place = await new_place(api, host)
    booked = await api.post(
        "/v1/bookings",
        json={"place_id": place["id"], "ranges": [slot()], "guests": 1, "payment_method_token": "tok_success"},
        headers=auth(client),
    )
    assert booked.status_code == 201, booked.text
    # The report counts bookings by their start: a window over the coming year holds this one.
    now = datetime.now(UTC).replace(microsecond=0)
    window = {"start_time": now.isoformat(), "end_time": (now + timedelta(days=366)).isoformat()}
    report = await api.get("/v1/reports/bookings", params=window, headers=auth(staff))
    assert report.status_code == 200, report.text
    assert {"daily_counts", "total_bookings", "cancellation_rate", "revenue"} <= set(report.json())
    revenue = await api.get("/v1/reports/revenue", headers=auth(staff))
    assert revenue.status_code == 200, revenue.text
    dashboard = await api.get("/v1/reports/dashboard", headers=auth(staff))
    assert dashboard.status_code == 200 and "cancellation_rate" in dashboard.json()
    csv = await api.get("/v1/reports/bookings.csv", params=window, headers=auth(staff))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    # Every row arrives, not only the first chunk: the CSV says what the JSON report says.
    header, *rows = csv.text.splitlines()
    assert header == "date,status,count"
    assert len(rows) == len(report.json()["daily_counts"]) >= 1
    assert sum(int(row.rsplit(",", 1)[1]) for row in rows) == report.json()["total_bookings"]
    for path in ("/v1/reports/revenue", "/v1/reports/dashboard", "/v1/reports/bookings.csv", "/v1/reports/users"):
        assert_problem(await api.get(path, headers=auth(client)), 403, code="ROLE_REQUIRED")


async def test_a_report_ending_in_the_first_days_of_year_1_needs_its_start_time(api):
    """The default window (30 days before end_time) cannot start before year 1: a 422, never a 500
    (found by schemathesis on /v1/reports/users)."""
    staff = await agent(api)
    early = {"end_time": "0001-01-01T09:17:23Z"}
    for path in ("/v1/reports/users", "/v1/reports/bookings", "/v1/reports/revenue"):
        assert_problem(await api.get(path, params=early, headers=auth(staff)), 422, code="INVALID_TIME_RANGE")
    given = {"start_time": "0001-01-01T00:00:00Z", "end_time": "0001-01-01T09:17:23Z"}
    assert (await api.get("/v1/reports/users", params=given, headers=auth(staff))).status_code == 200


async def test_a_user_over_the_rate_limit_gets_429_with_retry_after(api):
    user = await new_user(api)
    replies = []
    for _ in range((E2E_USER_RATE_LIMIT + 20) // 10):
        replies += await asyncio.gather(*(api.get("/v1/users/me", headers=auth(user)) for _ in range(10)))
    statuses = [r.status_code for r in replies]
    assert statuses.count(429) >= 20 and statuses.count(200) <= E2E_USER_RATE_LIMIT
    limited = next(r for r in replies if r.status_code == 429)
    assert_problem(limited, 429, code="RATE_LIMITED")
    assert int(limited.headers["retry-after"]) >= 1
    other = await new_user(api)
    assert (await api.get("/v1/users/me", headers=auth(other))).status_code == 200


async def test_the_demo_data_loads_twice_without_duplicates(gateway_url, monkeypatch):
    from gateway_e2e_support import E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD

    from gateway.demo import load_demo_data

    monkeypatch.setenv("GATEWAY_BOOTSTRAP_AGENT_EMAIL", E2E_AGENT_EMAIL)
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_AGENT_PASSWORD", E2E_AGENT_PASSWORD)
    first = await asyncio.to_thread(load_demo_data, gateway_url)
    second = await asyncio.to_thread(load_demo_data, gateway_url)
    assert first == second
    assert "Europe/Berlin" in first and "America/New_York" in first
    assert sum(line.strip().startswith("place") for line in first.splitlines()) == 4
