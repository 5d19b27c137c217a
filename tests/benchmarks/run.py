"""`./reserva bench`: runs every benchmark script (`*_bench.py`) in turn, each in its own process and
throwaway database, then writes one Markdown table (results/SUMMARY.md) and a PNG chart of latency
percentiles per scenario (results/latency.png). `./reserva bench availability booking` runs a subset."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from benchlib import RESULTS, machine, markdown_table  # noqa: E402


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if isinstance(r.get("p50_ms"), int | float)]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(12, max(4, 0.35 * len(rows))))
    names = [r["name"] for r in rows]
    for key, color in (("p99_ms", "#d62728"), ("p95_ms", "#ff7f0e"), ("p50_ms", "#1f77b4")):
        ax.barh(names, [r.get(key) or 0 for r in rows], color=color, label=key.replace("_ms", ""))
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.legend()
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = sorted(p for p in HERE.glob("*_bench.py") if not wanted or p.stem.removesuffix("_bench") in wanted)
    failures = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent.parent)
        print(f"--- {script.stem}: exit {code} in {time.monotonic() - started:.0f}s", flush=True)
        failures += code != 0
    rows: list[dict] = []
    for result in sorted(RESULTS.glob("*.json")):
        data = json.loads(result.read_text())
        for row in data.get("scenarios", []):
            rows.append({**row, "name": f"{result.stem}: {row.get('name')}"})
    summary = f"Machine: {machine()}\n\n{markdown_table(rows)}\n"
    (RESULTS / "SUMMARY.md").write_text(summary)
    chart(rows, RESULTS / "latency.png")
    print("\n" + summary)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
