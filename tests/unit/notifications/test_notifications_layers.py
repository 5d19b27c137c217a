"""The dependency rule: the notifications domain imports no infrastructure or generated code."""

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[3] / "services/notifications/notifications/domain"
FORBIDDEN = ("grpc", "sqlalchemy", "redis", "opentelemetry", "reserva", "httpx", "jinja2", "smtplib", "kit.db")


def test_domain_modules_import_no_infrastructure():
    offenders = []
    for module in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [(module.name, n) for n in names if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)]
    assert offenders == []
