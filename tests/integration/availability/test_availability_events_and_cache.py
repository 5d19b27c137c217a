"""Events leave through the outbox to the Redis stream; with Redis down the service still answers
from PostgreSQL."""

import asyncio
from datetime import timedelta

from availability_helpers import SERVICE, As, create_place, future_hour, hold_request, rid

from availability.bootstrap import build_deps
from availability.config import AvailabilitySettings
from availability.domain.model import TimeRange
from availability.service_layer import handlers, queries
from kit.cache import make_redis
from kit.outbox import stream_name
from kit.runtime import build_runtime
from reserva.availability.v1 import availability_pb2 as pb
from reserva.events.v1 import envelope_pb2

H = timedelta(hours=1)


async def test_hold_events_reach_the_stream_through_the_outbox(stub, infra, redis_namespace):
    place = await create_place(stub)
    start = future_hour()
    hold = await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    await As(stub, SERVICE).ConfirmHold(pb.ConfirmHoldRequest(request_id=rid(), hold_id=hold.id))
    redis = make_redis(infra.redis_url)
    wanted = {("hold.created", hold.id), ("hold.confirmed", hold.id), ("calendar.changed", place.id)}
    try:
        for _ in range(600):  # up to 30 s: the relay may wait behind a loaded machine
            entries = await redis.xrange(stream_name(redis_namespace, "availability"))
            seen = set()
            for _, fields in entries:
                envelope = envelope_pb2.EventEnvelope.FromString(fields[b"envelope"])
                seen.add((envelope.event_type, envelope.aggregate_id))
            if wanted <= seen:
                break
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    assert wanted <= seen


async def test_with_redis_down_reads_and_holds_still_work_from_postgresql(stub, settings_for):
    city_place = await create_place(stub, time_zone="UTC")
    settings = settings_for(
        "availability", AvailabilitySettings, redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2
    )
    runtime = build_runtime(settings, None)
    deps = build_deps(settings, runtime)
    try:
        place = await handlers.get_place(deps, city_place.id)
        assert place.id == city_place.id
        start = future_hour(days=6)
        window = TimeRange(start, start + 2 * H)
        hits, _ = await queries.search_availability(
            deps, queries.SearchQuery(filters=queries.PlaceFilter(city=place.city), window=window, duration=H)
        )
        assert [h.place["id"] for h in hits] == [place.id]
        hold = await handlers.hold_slots(
            deps, rid(), "fp", place.id, [TimeRange(start, start + H)], 1, timedelta(minutes=5), "", "someone"
        )
        assert hold.state.value == "held"
    finally:
        await runtime.close()


async def test_a_place_loaded_before_an_update_is_not_put_back_in_the_cache_after_it(
    stub, availability_server, redis_namespace
):
    """A reader misses the cache and loads the place; an update commits and marks the cache entry;
    then the reader puts its (old) copy: it must not stay there for the cache's TTL."""
    import dataclasses
    import uuid

    from availability.adapters.caching import PlaceCache
    from kit.cache import Cache

    place = await create_place(stub)
    deps = availability_server.deps
    async with deps.uow() as uow:
        old = await uow.places.get(place.id)
    new = dataclasses.replace(old, title="Renamed", version=old.version + 1)
    cache = PlaceCache(Cache(deps.place_cache.cache.redis, redis_namespace, f"it-{uuid.uuid4().hex[:6]}"))

    await cache.forget(new)  # the update committed
    await cache.put([old])  # the slow reader's copy
    assert await cache.get_many([place.id]) == {}
    await cache.put([new])  # the next reader's
    assert (await cache.get_many([place.id]))[place.id].title == "Renamed"
    await cache.put([old])  # an older copy never replaces a newer one
    assert (await cache.get_many([place.id]))[place.id].title == "Renamed"
