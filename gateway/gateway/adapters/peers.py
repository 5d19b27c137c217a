"""The four services behind the gateway: one channel per peer, created once at startup and reused,
each wrapped by the kit's PeerClient (deadline propagation, breaker, RpcError -> domain error)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kit.grpc_client import PeerClient, make_channel
from reserva.availability.v1 import availability_pb2, availability_pb2_grpc
from reserva.booking.v1 import booking_pb2, booking_pb2_grpc
from reserva.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from reserva.payments.v1 import payments_pb2, payments_pb2_grpc

_SERVICES = {
    "availability": (availability_pb2, "AvailabilityService", availability_pb2_grpc.AvailabilityServiceStub),
    "booking": (booking_pb2, "BookingService", booking_pb2_grpc.BookingServiceStub),
    "payments": (payments_pb2, "PaymentService", payments_pb2_grpc.PaymentServiceStub),
    "notifications": (notifications_pb2, "NotificationService", notifications_pb2_grpc.NotificationServiceStub),
}
SERVING, NOT_SERVING = "SERVING", "NOT_SERVING"


@dataclass
class Peers:
    availability: PeerClient
    booking: PeerClient
    payments: PeerClient
    notifications: PeerClient
    full_names: dict[str, str]

    def by_name(self) -> dict[str, PeerClient]:
        return {n: getattr(self, n) for n in _SERVICES}

    async def health(self, timeout_s: float) -> dict[str, str]:
        """gRPC health of every service, checked concurrently."""

        async def check(name: str, client: PeerClient) -> tuple[str, str]:
            try:
                reply = await health_pb2_grpc.HealthStub(client.channel).Check(
                    health_pb2.HealthCheckRequest(service=self.full_names[name]), timeout=timeout_s
                )
            except grpc.aio.AioRpcError:
                return name, NOT_SERVING
            ok = reply.status == health_pb2.HealthCheckResponse.SERVING
            return name, SERVING if ok else NOT_SERVING

        results = await asyncio.gather(*(check(n, c) for n, c in self.by_name().items()))
        return dict(results)

    async def close(self) -> None:
        for client in self.by_name().values():
            await client.channel.close()


def connect_peers(addresses: dict[str, str], default_deadline_s: float) -> Peers:
    clients, full_names = {}, {}
    for name, (module, service, stub_class) in _SERVICES.items():
        descriptor = module.DESCRIPTOR.services_by_name[service]
        full_names[name] = descriptor.full_name
        # Every method is safe to retry on UNAVAILABLE: reads trivially, writes by their request_id.
        methods = [m.name for m in descriptor.methods]
        channel = make_channel(addresses[name], descriptor.full_name, methods)
        clients[name] = PeerClient(name, channel, stub_class(channel), default_deadline_s)
    return Peers(**clients, full_names=full_names)
