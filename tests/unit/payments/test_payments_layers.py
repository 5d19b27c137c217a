"""The dependency rule: the domain imports no infrastructure; the service layer no adapters."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "services/payments/payments"
FORBIDDEN = {
    "domain": ("grpc", "sqlalchemy", "redis", "opentelemetry", "reserva", "payments.adapters",
               "payments.service_layer", "payments.entrypoints"),
    "service_layer": ("grpc", "sqlalchemy", "redis", "reserva", "payments.adapters", "payments.entrypoints"),
}  # fmt: skip


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_inwards(layer):
    for path in (ROOT / layer).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN[layer]), f"{path.name} imports {name}"
