"""Scale-out on one machine: the same grid with `execution: local`, then `execution: pool` on 1
and on 2 process workers (1 GPU slot each; the `gpu` limit and the pool's limit = the workers).

Grid: 4 models (aliases of the embedded GGUF, so each worker loads its own llama.cpp server per
model block, 1 thread: one simulated host = one core) × 1 prompt version × N scenarios × 1
candidate, temperature 0, response cache off.
A fresh `prefect server start` and benchlib home; configurations alternate `--repeats` times.
Prints a table and writes benchmarks/results/scaleout.json.

    .venv/bin/python benchmarks/scaleout.py [--scenarios 4] [--repeats 1]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib.settings import PREFECT_SERVER_ENV

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MAX_TOKENS = 48


def timed_run(values: dict) -> dict:
    from benchlib.store import runs
    from flows.benchmark import benchmark

    start = time.perf_counter()
    result = benchmark(**values)
    wall = time.perf_counter() - start
    cells = runs.run_cells(result["run_id"])
    first = min(c.started_at for c in cells)
    last = max(c.finished_at for c in cells)
    return {
        "wall_s": wall,
        "generation_span_s": (last - first).total_seconds(),
        "cell_s_sum": sum((c.finished_at - c.started_at).total_seconds() for c in cells),
        "cells": len(cells),
        "workers": sorted({c.worker.split("@")[0] for c in cells}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="benchlib-scaleout-"))
    os.environ.update(
        BENCHLIB_HOME=str(folder / "home"),
        PREFECT_HOME=str(folder / "prefect-home"),
        **PREFECT_SERVER_ENV,
        PREFECT_LOGGING_LEVEL="WARNING",
        # A simulated host is one llama.cpp thread, in every configuration (the workers of
        # tests.support.pool set the same): 2 workers can at best use both cores.
        BENCHLIB_LLAMA_THREADS="1",
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.support.pool import MODELS, alias_grid, prefect_server, prepare_pool, workers

    samples: dict[str, list[dict]] = {"local": [], "pool, 1 worker": [], "pool, 2 workers": []}
    with prefect_server(folder) as api, temporary_settings({PREFECT_API_URL: api}):
        for _ in range(args.repeats):
            prepare_pool(api, total_slots=1)
            samples["local"].append(timed_run(alias_grid(args.scenarios, "local", MAX_TOKENS)))
            for n in (1, 2):
                prepare_pool(api, total_slots=n)
                names = [f"w{i + 1}" for i in range(n)]
                with workers(api, names, folder):
                    label = f"pool, {n} worker" + ("s" if n > 1 else "")
                    samples[label].append(timed_run(alias_grid(args.scenarios, "pool", MAX_TOKENS)))

    base = statistics.median(s["wall_s"] for s in samples["pool, 1 worker"])
    rows = []
    print(f"\n{len(MODELS)} models × {args.scenarios} scenarios, {os.cpu_count()} cores")
    print(f"{'execution':<18}{'wall s':>9}{'÷ pool-1':>10}{'gen span s':>12}{'Σ cell s':>10}")
    for label, runs_ in samples.items():
        row = {
            "execution": label,
            "wall_s": statistics.median(s["wall_s"] for s in runs_),
            "generation_span_s": statistics.median(s["generation_span_s"] for s in runs_),
            "cell_s_sum": statistics.median(s["cell_s_sum"] for s in runs_),
            "workers_used": runs_[-1]["workers"],
            "samples": runs_,
        }
        row["ratio_to_pool_1"] = row["wall_s"] / base
        rows.append(row)
        print(
            f"{label:<18}{row['wall_s']:>9.1f}{row['ratio_to_pool_1']:>10.2f}"
            f"{row['generation_span_s']:>12.1f}{row['cell_s_sum']:>10.1f}"
        )
    out = ROOT / "benchmarks" / "results" / "scaleout.json"
    out.write_text(
        json.dumps(
            {
                "models": len(MODELS),
                "scenarios": args.scenarios,
                "cpus": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
