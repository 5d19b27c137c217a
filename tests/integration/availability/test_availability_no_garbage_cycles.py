"""A refused call and a finished unit of work are freed by reference counting, not left in
reference cycles for the garbage collector: under contention most calls are refusals (a taken slot),
and each used to leave about a hundred objects (the exception, its traceback's frames, the unit of
work with its repositories and connection wrappers), whose young-generation passes took about 10 ms
each under load. On the real server, over real gRPC and PostgreSQL; the collector's own record
(gc.DEBUG_SAVEALL) says what was left."""

import gc
from collections import Counter
from datetime import timedelta

import grpc
import pytest
from availability_helpers import SERVICE, As, create_place, future_hour, hold_request, rid

from kit.db import SqlAlchemyUnitOfWork
from kit.errors import ReservaError

H = timedelta(hours=1)
CALLS = 40


def _ours(garbage: list) -> Counter:
    """What in the collector's garbage is Reserva's: its exceptions, units of work, and frames of
    its code (grpc keeps a few objects of its own in a cycle per call, as a bare server does)."""
    kinds: Counter = Counter()
    for obj in garbage:
        if isinstance(obj, ReservaError | SqlAlchemyUnitOfWork):
            kinds[type(obj).__name__] += 1
        elif type(obj).__name__ == "frame" and "/services/" in obj.f_code.co_filename:
            kinds[f"frame {obj.f_code.co_name}"] += 1
    return kinds


@pytest.fixture
def collector_record():
    """Everything the collector finds unreachable while the test runs, kept for inspection."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield lambda: (gc.collect(), list(gc.garbage))[1]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_refused_holds_and_their_units_of_work_leave_nothing_for_the_garbage_collector(stub, collector_record):
    place = await create_place(stub)
    start = future_hour(days=9)
    await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H)))
    refused = 0
    for _ in range(CALLS):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start, start + H), request_id=rid()))
        refused += caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    for hour in range(1, 1 + CALLS // 4):  # and holds that succeed, each its own unit of work
        await As(stub, SERVICE).HoldSlots(hold_request(place.id, (start + hour * H, start + (hour + 1) * H)))
    assert refused == CALLS
    assert _ours(collector_record()) == Counter()
