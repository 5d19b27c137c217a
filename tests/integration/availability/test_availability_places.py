"""Places through real gRPC: create, read (single and batch), list with keyset pagination, update
with a field mask and etag, soft delete, ownership, validation and idempotency."""

import uuid

import grpc
import pytest
from availability_helpers import AGENT, SERVICE, As, client, create_place, error_info, host, place_message, rid
from google.protobuf import field_mask_pb2

from reserva.availability.v1 import availability_pb2 as pb
from reserva.type.v1 import types_pb2


async def test_a_host_creates_a_place_and_anyone_reads_it_back(stub, lock_readings):
    owner = host()
    created = await create_place(stub, owner, title="Loft")
    assert created.owner_id == owner.user_id and created.active and created.etag
    assert created.schedule.slot_granularity.seconds == 1800  # default applied
    got = await As(stub, client()).GetPlace(pb.GetPlaceRequest(id=created.id))
    assert got.title == "Loft" and got.id == created.id
    readings = [r for r in lock_readings() if r.operation in ("CreatePlace", "GetPlace")]
    assert readings and all(r.relation_locks <= 16 for r in readings)


async def test_create_place_is_idempotent_by_request_id(stub):
    owner = host()
    request = pb.CreatePlaceRequest(request_id=rid(), place=place_message())
    first = await As(stub, owner).CreatePlace(request)
    again = await As(stub, owner).CreatePlace(request)
    assert again.id == first.id
    request.place.title = "Another title"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, owner).CreatePlace(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[0] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    "overrides, reason, words",
    [
        ({"time_zone": "Mars/Olympus"}, "INVALID_TIME_ZONE", "time zone"),
        ({"price_per_hour": types_pb2.Money(amount_minor=-1, currency_code="EUR")}, "INVALID_AMOUNT", "price"),
        ({"price_per_hour": types_pb2.Money(amount_minor=100, currency_code="EURO")}, "INVALID_CURRENCY", "currency"),
        ({"title": ""}, "INVALID_ARGUMENT", "title"),
        ({"capacity": 0}, "INVALID_ARGUMENT", "capacity"),
        ({"photo_urls": ["http://insecure.example/a.jpg"]}, "INVALID_ARGUMENT", "https"),
    ],
)
async def test_bad_place_input_is_invalid_argument_with_a_readable_message(stub, overrides, reason, words):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_place(stub, **overrides)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[0] == reason
    assert words in caught.value.details()


async def test_only_hosts_create_places(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, client()).CreatePlace(pb.CreatePlaceRequest(request_id=rid(), place=place_message()))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_get_places_answers_many_ids_in_request_order_listing_unknown_ones(stub, lock_readings):
    a, b = await create_place(stub), await create_place(stub)
    unknown = str(uuid.uuid4())
    reply = await stub.GetPlaces(pb.GetPlacesRequest(ids=[b.id, unknown, a.id, b.id, "not-a-uuid"]))
    assert [p.id for p in reply.places] == [b.id, a.id]
    assert list(reply.missing_ids) == [unknown, "not-a-uuid"]
    assert all(r.total_locks <= 10 for r in lock_readings() if r.operation == "GetPlaces")


async def test_get_place_of_an_unknown_id_is_not_found(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPlace(pb.GetPlaceRequest(id=str(uuid.uuid4())))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value)[0] == "PLACE_NOT_FOUND"


async def test_list_places_pages_through_every_match_exactly_once(stub, lock_readings):
    city = f"Pagetown-{uuid.uuid4().hex[:6]}"
    created = {(await create_place(stub, city=city, capacity=c)).id for c in range(1, 8)}
    seen, token = [], ""
    while True:
        reply = await stub.ListPlaces(
            pb.ListPlacesRequest(city=city.upper(), page_size=3, page_token=token, order_by="capacity desc")
        )
        seen += list(reply.places)
        token = reply.next_page_token
        if not token:
            break
    assert {p.id for p in seen} == created and len(seen) == 7
    assert [p.capacity for p in seen] == sorted((p.capacity for p in seen), reverse=True)
    assert all(r.total_locks <= 10 for r in lock_readings() if r.operation == "ListPlaces")


@pytest.mark.parametrize("size", [-1, 201])
async def test_list_places_page_size_out_of_range_is_invalid_argument(stub, size):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListPlaces(pb.ListPlacesRequest(page_size=size))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[0] == "INVALID_PAGE_SIZE"


async def test_the_owner_updates_masked_fields_and_a_stale_etag_is_aborted(stub, lock_readings):
    owner = host()
    place = await create_place(stub, owner)
    patch = pb.Place(id=place.id, title="Renamed", capacity=99, etag=place.etag)
    mask = field_mask_pb2.FieldMask(paths=["title"])
    updated = await As(stub, owner).UpdatePlace(pb.UpdatePlaceRequest(request_id=rid(), place=patch, update_mask=mask))
    assert updated.title == "Renamed" and updated.capacity == place.capacity and updated.etag != place.etag
    got = await stub.GetPlace(pb.GetPlaceRequest(id=place.id))
    assert got.title == "Renamed"  # the cache was invalidated
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, owner).UpdatePlace(pb.UpdatePlaceRequest(request_id=rid(), place=patch, update_mask=mask))
    assert caught.value.code() is grpc.StatusCode.ABORTED
    assert all(r.relation_locks <= 16 for r in lock_readings() if r.operation == "UpdatePlace")


async def test_the_schedule_is_edited_through_its_sub_paths(stub):
    owner = host()
    place = await create_place(stub, owner)
    patch = pb.Place(id=place.id, schedule=pb.Schedule(blocked_weekdays=[6, 7]))
    mask = field_mask_pb2.FieldMask(paths=["schedule.blocked_weekdays"])
    updated = await As(stub, owner).UpdatePlace(pb.UpdatePlaceRequest(request_id=rid(), place=patch, update_mask=mask))
    assert list(updated.schedule.blocked_weekdays) == [6, 7]
    assert len(updated.schedule.opening_hours) == 7


async def test_update_refuses_output_only_paths_and_strangers(stub):
    owner = host()
    place = await create_place(stub, owner)
    bad_mask = pb.UpdatePlaceRequest(
        request_id=rid(), place=pb.Place(id=place.id), update_mask=field_mask_pb2.FieldMask(paths=["rating_average"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, owner).UpdatePlace(bad_mask)
    assert error_info(caught.value)[0] == "INVALID_UPDATE_MASK"
    stranger = pb.UpdatePlaceRequest(
        request_id=rid(),
        place=pb.Place(id=place.id, title="Mine"),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, host()).UpdatePlace(stranger)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_info(caught.value)[0] == "NOT_PLACE_OWNER"
    agent_does_it = await As(stub, AGENT).UpdatePlace(stranger)
    assert agent_does_it.title == "Mine"


async def test_delete_is_soft_and_idempotent(stub):
    owner = host()
    place = await create_place(stub, owner)
    request = pb.DeletePlaceRequest(request_id=rid(), id=place.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await As(stub, host()).DeletePlace(request)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    deleted = await As(stub, owner).DeletePlace(request)
    assert not deleted.active
    assert not (await As(stub, owner).DeletePlace(request)).active
    assert not (await stub.GetPlace(pb.GetPlaceRequest(id=place.id))).active


async def test_apply_rating_counts_each_review_event_once(stub):
    place = await create_place(stub)
    request = pb.ApplyRatingRequest(request_id=rid(), place_id=place.id, rating=4)
    await As(stub, SERVICE).ApplyRating(request)
    again = await As(stub, SERVICE).ApplyRating(request)
    other = await As(stub, SERVICE).ApplyRating(pb.ApplyRatingRequest(request_id=rid(), place_id=place.id, rating=2))
    assert again.rating_count == 1 and other.rating_count == 2 and other.rating_average == 3.0
    removed = await As(stub, SERVICE).ApplyRating(
        pb.ApplyRatingRequest(request_id=rid(), place_id=place.id, rating=2, removed=True)
    )
    assert removed.rating_count == 1 and removed.rating_average == 4.0


async def test_list_places_hides_deleted_places_except_from_their_owner(stub):
    owner = host()
    city = f"Hidetown-{uuid.uuid4().hex[:6]}"
    kept, gone = await create_place(stub, owner, city=city), await create_place(stub, owner, city=city)
    await As(stub, owner).DeletePlace(pb.DeletePlaceRequest(request_id=rid(), id=gone.id))
    public = await As(stub, client()).ListPlaces(pb.ListPlacesRequest(city=city))
    assert [p.id for p in public.places] == [kept.id]
    mine = await As(stub, owner).ListPlaces(pb.ListPlacesRequest(owner_id=owner.user_id))
    assert {p.id for p in mine.places} == {kept.id, gone.id}
    inactive = await As(stub, client()).ListPlaces(pb.ListPlacesRequest(city=city, active=False))
    assert [p.id for p in inactive.places] == [gone.id]


async def test_a_page_token_replayed_with_other_filters_is_invalid_argument(stub):
    city = f"Tokentown-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        await create_place(stub, city=city)
    first = await stub.ListPlaces(pb.ListPlacesRequest(city=city, page_size=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListPlaces(
            pb.ListPlacesRequest(city=city, page_size=1, min_capacity=2, page_token=first.next_page_token)
        )
    assert error_info(caught.value)[0] == "INVALID_PAGE_TOKEN"
