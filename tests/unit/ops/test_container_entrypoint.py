"""The image's entry point selects what runs from the container's arguments, and its health check
finds the server PID 1 runs and the port it listens on."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from kit.paths import REPO_ROOT
from kit.platform import DEFAULT_PORTS


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"reserva_docker_{name}", REPO_ROOT / "deploy/docker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load("entrypoint")
healthcheck = _load("healthcheck")


@pytest.mark.parametrize("service", ["availability", "booking", "payments", "notifications"])
def test_a_service_argument_runs_its_grpc_server_on_all_interfaces_and_its_usual_port(service):
    command, env = entrypoint.command_for([service], {})
    assert command == [sys.executable, "-m", f"{service}.entrypoints.server"]
    assert env[f"{service.upper()}_GRPC_HOST"] == "0.0.0.0"
    assert env[f"{service.upper()}_GRPC_PORT"] == str(DEFAULT_PORTS[service])


def test_the_gateway_argument_runs_the_http_server_and_explicit_settings_win():
    command, env = entrypoint.command_for(["gateway"], {"GATEWAY_HTTP_PORT": "9000"})
    assert command[-1] == "gateway.entrypoints.server"
    assert env["GATEWAY_HTTP_PORT"] == "9000" and env["GATEWAY_HTTP_HOST"] == "0.0.0.0"


def test_migrate_runs_one_services_migrations_and_locks_passes_its_arguments_on():
    assert entrypoint.command_for(["migrate", "payments"], {})[0][1:] == [
        "-m", "kit.cli", "migrate", "--service", "payments",
    ]  # fmt: skip
    assert entrypoint.command_for(["locks", "status", "--json"], {})[0][1:] == [
        "-m", "kit.cli", "locks", "status", "--json",
    ]  # fmt: skip


@pytest.mark.parametrize("argv", [[], ["--help"], ["inventory"], ["migrate"], ["migrate", "inventory"]])
def test_anything_else_stops_with_the_usage(argv):
    with pytest.raises(SystemExit) as stopped:
        entrypoint.command_for(argv, {})
    assert "usage:" in str(stopped.value)


def test_the_health_check_recognises_the_server_pid_1_runs():
    assert healthcheck.service_of(["/opt/venv/bin/python", "-m", "booking.entrypoints.server"]) == "booking"
    assert healthcheck.service_of(["python", "-m", "kit.cli", "migrate", "--service", "booking"]) is None
    assert healthcheck.service_of(["python", "-m", "evil.entrypoints.server"]) is None


def test_the_health_check_asks_the_port_the_entry_point_chose():
    for service in DEFAULT_PORTS:
        _, env = entrypoint.command_for([service], {})
        assert healthcheck.port_of(service, env) == DEFAULT_PORTS[service]
    assert healthcheck.port_of("booking", {"BOOKING_GRPC_PORT": "6000"}) == 6000
