"""The dependency rule of the availability service: domain imports no infrastructure, the service
layer imports no gRPC or generated code."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "services/availability/availability"
FORBIDDEN = {
    "domain": (
        "grpc",
        "sqlalchemy",
        "redis",
        "opentelemetry",
        "reserva",
        "asyncpg",
        "availability.adapters",
        "availability.service_layer",
        "availability.entrypoints",
    ),
    "service_layer": ("grpc", "reserva", "redis", "availability.entrypoints"),
}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_inner_layers_do_not_import_outer_ones(layer):
    files = sorted((PACKAGE / layer).glob("*.py"))
    assert files
    for path in files:
        bad = [m for m in imports_of(path) if m.startswith(FORBIDDEN[layer])]
        assert not bad, f"{path.name} imports {bad}"
