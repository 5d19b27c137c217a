"""The operator dashboard in a real browser: Debian's chromium, driven by Selenium through Debian's
/usr/bin/chromedriver (never a downloaded driver). The agent signs in on the page and reads figures
this test causes on the running platform: a booking (lock probe figures of booking and availability),
a place read twice (an availability cache hit), and a session of the booking role that holds a lock
another session waits for (lock usage of booking, a blocked session). Releasing it takes the
victim off the blocked sessions on the next poll. The JSON endpoint answers 401 without a token and 403 to a
non-agent."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid

import asyncpg
import pytest
from gateway_e2e_support import E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD, PASSWORD, agent, auth, new_place, new_user, slot

from kit.provision import service_database_url

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1600",
)
# Generous: the services publish their snapshots every 5 s and the machine may be loaded.
WAIT_S = 90


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver (./reserva test does it)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="reserva-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def until(description: str, check, timeout_s: float = WAIT_S):
    """Wait (in a thread: Selenium blocks) until `check()` returns something truthy."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(_driver):
        try:
            return check()
        except StaleElementReferenceException:  # the page replaced the table meanwhile
            return None

    def wait():
        return WebDriverWait(None, timeout_s, poll_frequency=0.25).until(attempt, description)

    return await asyncio.to_thread(wait)


def cells(driver, table: str, **key: str) -> dict[str, str] | None:
    """The cells (data-field -> text) of the first row of `table` whose data attributes match."""
    selector = f"#{table} tbody tr" + "".join(f'[data-{k.replace("_", "-")}="{v}"]' for k, v in key.items())
    # Read in one script: the page re-renders its tables every poll, so element handles go stale.
    return driver.execute_script(
        """const row = document.querySelector(arguments[0]);
           if (!row) return null;
           const pairs = Array.from(row.querySelectorAll("td"), td => [td.dataset.field, td.innerText]);
           return Object.fromEntries(pairs);""",
        selector,
    )


def chart_line(driver, service: str) -> dict | None:
    """A chart line's points and last value, read in one script (the chart is redrawn every poll)."""
    return driver.execute_script(
        """const p = document.querySelector(`#locks-chart polyline[data-service="${arguments[0]}"]`);
           return p ? {points: p.getAttribute("points") || "", last: p.dataset.last} : null;""",
        service,
    )


def as_int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def sign_in(driver, gateway_url: str, email: str, password: str) -> None:
    driver.get(f"{gateway_url}/ops/dashboard?interval_ms=1000")
    driver.execute_script("window.sessionStorage.clear()")
    driver.refresh()
    driver.find_element("id", "email").send_keys(email)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-button").click()


class BookingRoleSessions:
    """Connections as the booking service's role (as `reserva locks` would see a stuck service)."""

    def __init__(self, dsn: str):
        self.dsn, self.opened = dsn, []

    async def open(self, application_name: str) -> asyncpg.Connection:
        settings = {"application_name": application_name, "idle_in_transaction_session_timeout": "300000"}
        conn = await asyncpg.connect(self.dsn, server_settings=settings)
        self.opened.append(conn)
        return conn

    def close_all(self) -> None:
        for conn in self.opened:
            conn.terminate()
        self.opened.clear()


@pytest.fixture
async def booking_role(platform):
    dsn = service_database_url(platform.admin_database_url, platform.database, "booking").replace("+asyncpg", "")
    sessions = BookingRoleSessions(dsn)
    table = f"booking.ops_e2e_{uuid.uuid4().hex[:10]}"
    owner = await sessions.open("ops-e2e-setup")
    await owner.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    yield sessions, table
    sessions.close_all()
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        await owner.close()


async def test_the_overview_needs_an_agent(api):
    anonymous = await api.get("/v1/ops/overview")
    assert anonymous.status_code == 401, anonymous.text
    client = await new_user(api, "client")
    assert (await api.get("/v1/ops/overview", headers=auth(client))).status_code == 403
    answer = await api.get("/v1/ops/overview", headers=auth(await agent(api)))
    assert answer.status_code == 200, answer.text
    assert {s["service"] for s in answer.json()["services"]} >= {"availability", "booking", "gateway"}


async def test_a_client_signing_in_on_the_dashboard_is_told_it_is_for_agents(api, gateway_url, browser):
    client = await new_user(api, "client")
    sign_in(browser, gateway_url, client["email"], PASSWORD)
    message = await until("the page refuses", lambda: "agents only" in browser.find_element("id", "login-error").text)
    assert message
    assert not browser.find_element("id", "dashboard").is_displayed()


async def test_the_dashboard_shows_the_locks_blocked_sessions_and_figures_this_test_causes(
    api, gateway_url, browser, booking_role
):
    sessions, table = booking_role
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    for _ in range(2):  # the second read is served by availability's place cache
        assert (await api.get(f"/v1/places/{place['id']}", headers=auth(client))).status_code == 200
    body = {"place_id": place["id"], "ranges": [slot()], "guests": 2, "payment_method_token": "tok_success"}
    booked = await api.post("/v1/bookings", json=body, headers=auth(client))
    assert booked.status_code == 201, booked.text

    # A session of the booking role takes a lock and idles; another one waits for it.
    holder = await sessions.open("booking")
    holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
    await holder.execute("BEGIN")
    await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    victim = await sessions.open(f"ops-e2e-victim-{uuid.uuid4().hex[:6]}")
    victim_pid = await victim.fetchval("SELECT pg_backend_pid()")
    waiting = asyncio.create_task(victim.fetchval(f"SELECT count(*) FROM {table}"))

    sign_in(browser, gateway_url, E2E_AGENT_EMAIL, E2E_AGENT_PASSWORD)
    await until("the dashboard shows", lambda: browser.find_element("id", "dashboard").is_displayed())

    blocked = await until(
        "the victim is listed as blocked by the holder",
        lambda: (
            (row := cells(browser, "blocked-table", pid=str(victim_pid)))
            and str(holder_pid) in row["blocked_by"]
            and row
        ),
    )
    assert "booking" in blocked["blocked_by"]
    assert table.split(".")[1] in blocked["waiting_for"]
    assert as_int(browser.find_element("id", "blocked-count").text) >= 1
    held = await until(
        "booking holds the locks now",
        lambda: as_int((cells(browser, "services-table", service="booking") or {}).get("live_locks")) or None,
    )
    assert held >= 1
    assert cells(browser, "long-table", pid=str(holder_pid))["state"] == "idle in transaction"

    # What the services published about themselves: their lock probe, outbox and cache figures.
    create = await until(
        "booking's CreateBooking measured",
        lambda: cells(browser, "operations-table", service="booking", operation="CreateBooking"),
    )
    assert 1 <= int(create["max_locks"]) <= 16 + 1
    hold = await until(
        "availability's HoldSlots measured",
        lambda: cells(browser, "operations-table", service="availability", operation="HoldSlots"),
    )
    assert int(hold["max_advisory_locks"]) <= 1 and int(hold["transactions"]) >= 1
    row = await until(
        "availability's cache hits counted",
        lambda: (r := cells(browser, "services-table", service="availability")) and "%" in r["cache_hit_rate"] and r,
    )
    assert 0 < float(row["cache_hit_rate"].split()[0]) <= 100
    booking_row = cells(browser, "services-table", service="booking")
    assert as_int(booking_row["outbox_pending"]) is not None  # its outbox backlog is reported
    assert as_int(booking_row["probe_max_locks"]) >= int(create["max_locks"])
    assert as_int(booking_row["instances"]) >= 1
    assert "%" in browser.find_element("id", "cache-hit-rate").text

    # The chart: one line per service, booking's last point at the locks it holds now.
    line = await until(
        "the chart has drawn several polls",
        lambda: (p := chart_line(browser, "booking")) and len(p["points"].split()) >= 2 and p,
    )
    assert int(line["last"]) >= 1
    drawn = set(
        browser.execute_script(
            "return Array.from(document.querySelectorAll('#locks-chart polyline'), p => p.dataset.service)"
        )
    )
    assert {"availability", "booking", "payments", "notifications", "gateway"} <= drawn

    # Released, the victim's statement finishes and the page says no one waits any more.
    holder.terminate()
    assert await asyncio.wait_for(waiting, 30) == 0
    await until(
        "the victim leaves the blocked sessions", lambda: cells(browser, "blocked-table", pid=str(victim_pid)) is None
    )
