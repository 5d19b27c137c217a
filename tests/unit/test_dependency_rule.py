"""The dependency rule of every service (STYLE.md): domain <- service_layer <- adapters/entrypoints.
The domain imports no infrastructure, no generated code and no outer layer; the service layer
imports no gRPC, no generated code, no entry point and no adapter, except its unit of work, which
builds the repositories (as in cosmicpython)."""

import ast
from pathlib import Path

import pytest

from kit.paths import REPO_ROOT

PACKAGES = {
    "availability": REPO_ROOT / "services/availability/availability",
    "booking": REPO_ROOT / "services/booking/booking",
    "payments": REPO_ROOT / "services/payments/payments",
    "notifications": REPO_ROOT / "services/notifications/notifications",
    "gateway": REPO_ROOT / "gateway/gateway",
}
INFRASTRUCTURE = ("grpc", "sqlalchemy", "asyncpg", "redis", "opentelemetry", "fastapi", "reserva")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _forbidden(package: str, layer: str, module: str) -> tuple[str, ...]:
    if layer == "domain":
        return (*INFRASTRUCTURE, f"{package}.service_layer", f"{package}.adapters", f"{package}.entrypoints")
    outer = (
        (f"{package}.entrypoints",)
        if module == "unit_of_work.py"
        else (f"{package}.entrypoints", f"{package}.adapters")
    )
    return ("grpc", "reserva", "fastapi", *outer)


@pytest.mark.parametrize("package", sorted(PACKAGES))
@pytest.mark.parametrize("layer", ["domain", "service_layer"])
def test_each_layer_imports_only_inwards(package, layer):
    folder = PACKAGES[package] / layer
    files = sorted(folder.glob("*.py"))
    assert files, f"{package} has no {layer}"
    offences = [
        f"{p.name} imports {name}"
        for p in files
        for name in _imports(p)
        if name.startswith(_forbidden(package, layer, p.name))
    ]
    assert offences == []
