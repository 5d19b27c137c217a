"""Settings of the booking service (env prefix BOOKING_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from kit.config import ServiceSettings


class BookingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKING_", extra="ignore")

    service_name: str = "booking"
    grpc_port: int = 50052
    availability_addr: str = "127.0.0.1:50051"
    payments_addr: str = "127.0.0.1:50053"
    # Deadline of each call to a peer (the incoming call's remaining time caps it).
    peer_deadline_s: float = 3.0

    # How long a REQUEST waits for the host, an APPROVED booking for the client's payment, and an
    # INSTANT booking's hold for the saga to finish.
    request_ttl_s: int = 48 * 3600
    approval_payment_ttl_s: int = 24 * 3600
    hold_ttl_s: int = 900
    # Hold hoarding: at most this many REQUESTED/APPROVED/HELD bookings per client.
    max_pending_per_client: int = 10
    # A flow that has not finished after this long is taken over by the recovery worker.
    saga_recovery_after_s: float = 30.0
    waitlist_offer_ttl_s: int = 900

    # Admission control: booking flows running at once; the rest queue (within their deadline)
    # instead of exhausting the database pool and the peers.
    max_concurrent_flows: int = 16
    # A flow is admitted only while its caller has at least this long left (a saga's few peer calls).
    flow_reserve_s: float = 2.0
    # HoldSlots calls in flight per place from this process. Availability serializes a place's
    # holds anyway (advisory lock); more callers would only queue inside PostgreSQL, holding
    # connections and running into lock_timeout.
    max_holds_in_flight_per_place: int = 2

    workers_enabled: bool = True
    sweeper_interval_s: float = 1.0
    sweeper_batch_size: int = 20
    place_cache_ttl_s: int = 60

    # Test only: the saga stops (as if the process died) right after this step: "hold",
    # "authorize", "confirm_hold" or "capture". Empty in production.
    saga_crash_after_step: str = ""
