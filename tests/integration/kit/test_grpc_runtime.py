"""The kit's gRPC server and client on real sockets: errors become statuses with a reason, bugs
become INTERNAL with a fixed message, health reports SERVING, the client propagates deadlines and
its breaker fails closed."""

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kit.config import ServiceSettings
from kit.errors import FailedPrecondition, Unavailable
from kit.grpc_client import PeerClient, error_from_rpc
from kit.server import ServiceRegistration, start_server
from kit.timezones import iana_names

SERVICE = "reserva.test.v1.Echo"


def _registration(behaviour):
    async def handle(request: bytes, context):
        return await behaviour(request, context)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {"Call": grpc.unary_unary_rpc_method_handler(handle, lambda b: b, lambda b: b)},
    )
    return ServiceRegistration(SERVICE, lambda server: server.add_generic_rpc_handlers((handler,)))


class RawStub:
    def __init__(self, channel):
        self.Call = channel.unary_unary(f"/{SERVICE}/Call", lambda b: b, lambda b: b)


async def _serve(behaviour):
    return await start_server(ServiceSettings(service_name="echo"), [_registration(behaviour)])


async def test_a_domain_error_reaches_the_caller_with_its_status_and_reason():
    async def behaviour(request, context):
        raise FailedPrecondition("that time is taken", reason="SLOT_UNAVAILABLE", metadata={"n": "1"})

    running = await _serve(behaviour)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await RawStub(channel).Call(b"x")
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert caught.value.details() == "that time is taken"
        error = error_from_rpc(caught.value)
        assert error.reason == "SLOT_UNAVAILABLE" and error.metadata == {"n": "1"}
    finally:
        await running.stop(0)


async def test_a_bug_becomes_internal_with_a_fixed_message_and_no_traceback():
    async def behaviour(request, context):
        raise KeyError("secret-internal-detail")

    running = await _serve(behaviour)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await RawStub(channel).Call(b"x")
        assert caught.value.code() is grpc.StatusCode.INTERNAL
        assert "secret" not in (caught.value.details() or "")
    finally:
        await running.stop(0)


async def test_health_reports_serving_then_not_serving_on_shutdown():
    async def behaviour(request, context):
        return request

    running = await _serve(behaviour)
    async with grpc.aio.insecure_channel(running.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await running.health.enter_graceful_shutdown()
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await running.stop(0)


async def test_graceful_shutdown_lets_an_in_flight_call_finish():
    started = asyncio.Event()

    async def behaviour(request, context):
        started.set()
        await asyncio.sleep(0.3)
        return b"done"

    running = await _serve(behaviour)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = RawStub(channel)

        async def call_it():
            return await stub.Call(b"x")

        call = asyncio.create_task(call_it())
        await asyncio.wait_for(started.wait(), timeout=30)  # in flight: the handler is running
        await running.stop(grace_s=2)
        assert await call == b"done"


async def test_the_client_passes_on_the_remaining_deadline_of_the_incoming_call():
    seen = {}

    async def behaviour(request, context):
        seen["remaining"] = context.time_remaining()
        return request

    running = await _serve(behaviour)
    from kit.context import current_deadline

    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            client = PeerClient("echo", channel, RawStub(channel), default_deadline_s=30)
            token = current_deadline.set(time.monotonic() + 10.0)
            try:
                await client.call("Call", b"x")
            finally:
                current_deadline.reset(token)
        # The incoming call's 10 s, not the client's own default of 30 s.
        assert seen["remaining"] is not None and seen["remaining"] <= 10.0
    finally:
        await running.stop(0)


async def test_the_breaker_fails_closed_when_a_peer_is_down():
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        client = PeerClient("payments", channel, RawStub(channel), default_deadline_s=0.5)
        client.breaker.failure_threshold = 2
        for _ in range(2):
            with pytest.raises(Unavailable):
                await client.call("Call", b"x")
        with pytest.raises(Unavailable) as caught:
            await client.call("Call", b"x")
        assert "circuit open" in caught.value.message
        assert caught.value.reason == "PAYMENTS_UNAVAILABLE"


async def test_a_server_reads_the_zone_names_before_its_first_call():
    """The zone database's names are walked once per process (50-90 ms): at start, not in the
    first request that checks a time zone."""
    iana_names.cache_clear()

    async def behaviour(request, context):
        return request

    running = await _serve(behaviour)
    try:
        assert iana_names.cache_info().currsize == 1
    finally:
        await running.stop(0)
