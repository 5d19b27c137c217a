"""Reserva's shared runtime kit: settings, server bootstrap, interceptors, database sessions with the
lock probe, gRPC clients, Redis, telemetry and the outbox relay. Written once, used by every service."""
