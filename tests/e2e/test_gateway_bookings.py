"""Bookings through the gateway: instant and on-request flows, a taken slot (409 with the
conflicting ranges), a declined card (402), idempotent creation, pagination, payments and refunds,
and the authorization matrix (other clients and hosts get 403/404, never data)."""

import uuid

import pytest
from gateway_e2e_support import agent, assert_problem, auth, new_place, new_user, slot

pytestmark = [pytest.mark.xdist_group("e2e"), pytest.mark.asyncio]


async def book(api, client, place, when=None, token="tok_success", key=None, **extra):
    body = {"place_id": place["id"], "ranges": [when or slot()], "guests": 2, "payment_method_token": token} | extra
    headers = auth(client) | ({"Idempotency-Key": key} if key else {})
    return await api.post("/v1/bookings", json=body, headers=headers)


async def test_an_instant_booking_is_confirmed_and_paid(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    created = await book(api, client, place)
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["status"] == "CONFIRMED" and booking["client_id"] == client["id"]
    assert booking["price"] == {"amount_minor": 4000, "currency_code": "EUR"}
    details = await api.get(f"/v1/bookings/{booking['id']}", headers=auth(client))
    assert details.status_code == 200 and details.json()["place"]["id"] == place["id"]
    payments = await api.get(f"/v1/bookings/{booking['id']}/payments", headers=auth(client))
    assert payments.status_code == 200, payments.text
    assert [p["status"] for p in payments.json()["payments"]] == ["CAPTURED"]


async def test_a_taken_slot_is_409_with_the_conflicting_ranges(api):
    host = await new_user(api, "host")
    first, second = await new_user(api, "client"), await new_user(api, "client")
    place = await new_place(api, host)
    when = slot()
    assert (await book(api, first, place, when)).status_code == 201
    taken = await book(api, second, place, when)
    body = assert_problem(taken, 409, code="SLOT_UNAVAILABLE")
    assert body["conflicting_ranges"], body
    assert body["conflicting_ranges"][0]["start_time"] <= when["start_time"]


async def test_a_declined_card_is_402(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    assert_problem(await book(api, client, place, token="tok_decline_card"), 402, code="PAYMENT_DECLINED")


async def test_a_retried_booking_post_returns_the_original_booking(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    key, when = uuid.uuid4().hex, slot()
    first = await book(api, client, place, when, key=key)
    again = await book(api, client, place, when, key=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = await book(api, client, place, slot(), key=key)
    assert_problem(other, 422, code="IDEMPOTENCY_KEY_REUSED")


async def test_a_request_is_approved_by_its_host_and_paid_by_its_client(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host, mode="REQUEST")
    requested = await book(api, client, place, token="")
    assert requested.status_code == 201 and requested.json()["status"] == "REQUESTED"
    booking_id = requested.json()["id"]
    approved = await api.post(f"/v1/bookings/{booking_id}:approve", headers=auth(host))
    assert approved.status_code == 200 and approved.json()["status"] == "APPROVED"
    confirmed = await api.post(
        f"/v1/bookings/{booking_id}:confirm", json={"payment_method_token": "tok_success"}, headers=auth(client)
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED"
    again = await api.post(f"/v1/bookings/{booking_id}:approve", headers=auth(host))
    assert_problem(again, 409, code="ILLEGAL_STATUS_TRANSITION")


async def test_a_host_rejects_a_request(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host, mode="REQUEST")
    booking_id = (await book(api, client, place, token="")).json()["id"]
    rejected = await api.post(f"/v1/bookings/{booking_id}:reject", json={"reason": "closed"}, headers=auth(host))
    assert rejected.status_code == 200 and rejected.json()["status"] == "REJECTED"


async def test_a_client_cancels_and_is_refunded(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    booking = (await book(api, client, place)).json()
    cancelled = await api.post(f"/v1/bookings/{booking['id']}:cancel", json={"reason": "ill"}, headers=auth(client))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["cancellation"]["refund_percent"] == 100


async def test_other_users_cannot_read_approve_cancel_or_refund_a_booking(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    other_client, other_host = await new_user(api, "client"), await new_user(api, "host")
    instant = await new_place(api, host)
    request_place = await new_place(api, host, mode="REQUEST")
    booking = (await book(api, client, instant)).json()
    requested = (await book(api, client, request_place, token="")).json()
    for intruder in (other_client, other_host):
        read = await api.get(f"/v1/bookings/{booking['id']}", headers=auth(intruder))
        assert_problem(read, 403, 404)
        assert booking["id"] not in read.text or read.status_code in (403, 404)
        cancel = await api.post(f"/v1/bookings/{booking['id']}:cancel", headers=auth(intruder))
        assert_problem(cancel, 403, 404)
        payments = await api.get(f"/v1/bookings/{booking['id']}/payments", headers=auth(intruder))
        assert_problem(payments, 403, 404)
    assert_problem(await api.post(f"/v1/bookings/{requested['id']}:approve", headers=auth(other_host)), 403, 404)
    assert_problem(await api.post(f"/v1/bookings/{requested['id']}:approve", headers=auth(client)), 403)
    payment_id = booking["payment_id"]
    assert_problem(await api.get(f"/v1/payments/{payment_id}", headers=auth(other_client)), 403, 404)
    assert_problem(await api.post(f"/v1/payments/{payment_id}:refund", headers=auth(other_host)), 403, 404)
    assert_problem(await api.post(f"/v1/payments/{payment_id}:refund", headers=auth(client)), 403)
    listed = await api.get("/v1/bookings", params={"client_id": client["id"]}, headers=auth(other_client))
    assert listed.status_code in (200, 403, 404)
    if listed.status_code == 200:
        assert listed.json()["bookings"] == []
    still = await api.get(f"/v1/bookings/{booking['id']}", headers=auth(client))
    assert still.json()["status"] == "CONFIRMED"


async def test_an_agent_refunds_part_of_a_payment(api):
    host, client, staff = await new_user(api, "host"), await new_user(api, "client"), await agent(api)
    place = await new_place(api, host)
    booking = (await book(api, client, place)).json()
    refund = await api.post(
        f"/v1/payments/{booking['payment_id']}:refund",
        json={"amount": {"amount_minor": 1000, "currency_code": "EUR"}, "reason": "goodwill"},
        headers=auth(staff),
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["payment"]["refunded_amount"]["amount_minor"] == 1000
    mine = await api.get(f"/v1/payments/{booking['payment_id']}", headers=auth(client))
    assert mine.status_code == 200 and mine.json()["status"] == "PARTIALLY_REFUNDED"


async def test_the_host_sees_and_refunds_the_booking_s_payment_and_a_payer_never_refunds_themselves(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    booking = (await book(api, client, place)).json()
    payment_id = booking["payment_id"]
    seen = await api.get(f"/v1/payments/{payment_id}", headers=auth(host))
    assert seen.status_code == 200 and seen.json()["status"] == "CAPTURED", seen.text
    listed = await api.get(f"/v1/bookings/{booking['id']}/payments", headers=auth(host))
    assert [p["id"] for p in listed.json()["payments"]] == [payment_id], listed.text
    goodwill = {"amount": {"amount_minor": 500, "currency_code": "EUR"}, "reason": "goodwill"}
    refund = await api.post(f"/v1/payments/{payment_id}:refund", json=goodwill, headers=auth(host))
    assert refund.status_code == 200, refund.text
    assert refund.json()["payment"]["refunded_amount"]["amount_minor"] == 500

    # A payer who is also a host (of any place) still may not refund their own payment.
    both = await new_user(api, "client", "host")
    own = (await book(api, both, place, slot(days_ahead=21))).json()
    assert_problem(await api.post(f"/v1/payments/{own['payment_id']}:refund", headers=auth(both)), 403)
    assert (await api.get(f"/v1/payments/{own['payment_id']}", headers=auth(both))).json()["status"] == "CAPTURED"

    # The client cancels afterwards: the booking refunds what is left (not the whole price, which
    # would exceed what can still be refunded) and the cancellation ends.
    cancelled = await api.post(f"/v1/bookings/{booking['id']}:cancel", json={"reason": "ill"}, headers=auth(client))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED" and cancelled.json()["saga_state"] == "SAGA_STATE_DONE"
    after = (await api.get(f"/v1/payments/{payment_id}", headers=auth(client))).json()
    assert after["status"] == "REFUNDED" and after["refunded_amount"] == after["captured_amount"], after


async def test_a_client_walks_their_bookings_page_by_page(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    made = {(await book(api, client, place, slot(days_ahead=d))).json()["id"] for d in (10, 11, 12, 13, 14)}
    seen, cursor = [], None
    while True:
        params = {"page_size": 2} | ({"page_token": cursor} if cursor else {})
        page = await api.get("/v1/bookings", params=params, headers=auth(client))
        assert page.status_code == 200, page.text
        seen += [b["id"] for b in page.json()["bookings"]]
        assert all(b["place"]["id"] == place["id"] for b in page.json()["bookings"])
        cursor = page.json()["next_page_token"]
        if not cursor:
            break
    assert sorted(seen) == sorted(made)


async def test_reviewing_a_booking_that_is_not_completed_is_409(api):
    host, client = await new_user(api, "host"), await new_user(api, "client")
    place = await new_place(api, host)
    booking = (await book(api, client, place)).json()
    review = await api.post("/v1/reviews", json={"booking_id": booking["id"], "rating": 5}, headers=auth(client))
    assert_problem(review, 409)
    reviews = await api.get(f"/v1/places/{place['id']}/reviews", headers=auth(client))
    assert reviews.status_code == 200 and reviews.json()["reviews"] == []
