"""The platform is up: every service SERVING through the gateway, the API documented."""

import pytest

pytestmark = [pytest.mark.xdist_group("e2e"), pytest.mark.asyncio]


async def test_every_service_is_serving(api):
    health = await api.get("/v1/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "SERVING",
        "services": {n: "SERVING" for n in ("availability", "booking", "payments", "notifications")},
    }
    assert (await api.get("/healthz")).json() == {"status": "ok"}


async def test_the_openapi_document_and_the_docs_page_are_served(api):
    document = (await api.get("/openapi.json")).json()
    assert "/v1/bookings/{booking_id}:approve" in document["paths"]
    assert "application/problem+json" in document["paths"]["/v1/bookings"]["post"]["responses"]["409"]["content"]
    assert (await api.get("/docs")).status_code == 200
