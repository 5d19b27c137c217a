"""Generate the Python code and typed stubs of every proto into protos/gen (the one place generated
code lives). `--check` regenerates into a temporary folder and fails if the committed code differs."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

from kit.paths import REPO_ROOT

PROTO_ROOT = REPO_ROOT / "protos"
GEN_ROOT = PROTO_ROOT / "gen"


def _protos() -> list[Path]:
    return sorted((PROTO_ROOT / "reserva").rglob("*.proto"))


def generate(out: Path = GEN_ROOT) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_ROOT}", f"-I{include}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--mypy_out={out}", f"--mypy_grpc_out={out}",
        *[str(p.relative_to(PROTO_ROOT)) for p in _protos()],
    ]  # fmt: skip
    subprocess.run(args, check=True, cwd=PROTO_ROOT)
    for folder in [out, *[p for p in out.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    (out / "__init__.py").unlink()  # protos/gen is a path entry, not a package


def stale_files() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        problems = []
        for path in fresh.rglob("*"):
            if path.is_file():
                rel = path.relative_to(fresh)
                committed = GEN_ROOT / rel
                if not committed.exists() or not filecmp.cmp(path, committed, shallow=False):
                    problems.append(str(rel))
        for path in GEN_ROOT.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and not (fresh / path.relative_to(GEN_ROOT)).exists():
                problems.append(f"{path.relative_to(GEN_ROOT)} (no longer generated)")
        return problems


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--check":
        stale = stale_files()
        if stale:
            print("generated code is stale; run `./reserva protos`:\n  " + "\n  ".join(stale))
            return 1
        print("generated code is up to date")
        return 0
    generate()
    print(f"generated {len(_protos())} protos into {os.path.relpath(GEN_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
