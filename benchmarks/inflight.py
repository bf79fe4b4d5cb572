"""max_inflight on the embedded model: 1 model × 16 cells (2 prompt versions × 8 scenarios,
1 candidate, 64 tokens, temperature 0, response cache off), the full flow (judge skipped), with
1, 2 and 4 cells in flight; the local llama.cpp server gets that many slots.

Per setting: the flow's wall time, the collect span (first cell start → last cell end, from the
database), completion tokens over that span, and the mean latency of one request (batched
requests each take longer; the point is that more of them finish per second). Settings
alternate within each repeat; medians. Prints a table; writes benchmarks/results/inflight.json.
    .venv/bin/python benchmarks/inflight.py [--repeats 2] [--settings 1 2 4] [--threads 1]
llama.cpp threads default to 1: on a shared 2-core box two spinning threads next to other work
run many times slower, which would measure the neighbours rather than batching.
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(max_inflight: int) -> dict:
    from benchlib.config import build_config
    from benchlib.store import runs
    from flows.benchmark import benchmark

    config = build_config(
        {
            "suite": str(ROOT / "prompts" / "tips"),
            "prompts": ["v1", "v2-mentor"],
            "n_candidates": 1,
            "temperature": 0.0,
            "max_tokens": 64,
            "judge": "skip",
            "no_cache": True,
            "max_inflight": max_inflight,
        }
    )
    start = time.perf_counter()
    run_id = benchmark(**config.model_dump())["run_id"]
    wall_s = time.perf_counter() - start
    cells = runs.run_cells(run_id)
    produced = [c for c in runs.run_candidates(run_id) if c.error is None]
    span_s = (
        max(c.finished_at for c in cells) - min(c.started_at for c in cells)
    ).total_seconds() - sum(c.model_load_s or 0.0 for c in cells)
    tokens = sum(c.completion_tokens for c in produced)
    return {
        "max_inflight": max_inflight,
        "cells": len(cells),
        "failed": sum(c.status != "completed" for c in cells),
        "wall_s": wall_s,
        "collect_s": span_s,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / span_s,
        "latency_mean_s": statistics.fmean(c.latency_s for c in produced),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--settings", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="benchlib-inflight-"))
    os.environ["BENCHLIB_HOME"] = str(work / "home")
    # A private Prefect home: a run stopped mid-block leaves no `gpu` slot taken in ~/.prefect.
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["BENCHLIB_LLAMA_THREADS"] = str(args.threads)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Imported once the private home is set: the database and MLflow store live there.
    from benchlib.pipeline.orchestration import ensure_gpu_limit

    ensure_gpu_limit()
    load_before = os.getloadavg()[0]
    samples: dict[int, list[dict]] = {n: [] for n in args.settings}
    for repeat in range(args.repeats):
        for n in args.settings:
            samples[n].append(measure(n))
            print(
                f"repeat {repeat + 1}, max_inflight {n}: {samples[n][-1]['wall_s']:.1f} s",
                flush=True,
            )

    rows = []
    for n, runs_of_n in samples.items():
        row = {"max_inflight": n, "repeats": len(runs_of_n)}
        for key in ("wall_s", "collect_s", "tokens_per_s", "latency_mean_s", "completion_tokens"):
            row[key] = round(statistics.median(r[key] for r in runs_of_n), 2)
        row["failed"] = sum(r["failed"] for r in runs_of_n)
        rows.append(row)
    base = rows[0]
    print(
        f"\n{'max_inflight':>12}{'wall s':>9}{'collect s':>11}{'tokens':>8}{'tokens/s':>10}"
        f"{'÷ first':>9}{'latency s':>11}"
    )
    for row in rows:
        row["tokens_per_s_ratio"] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
        print(
            f"{row['max_inflight']:>12}{row['wall_s']:>9.1f}{row['collect_s']:>11.1f}"
            f"{row['completion_tokens']:>8.0f}{row['tokens_per_s']:>10.1f}"
            f"{row['tokens_per_s_ratio']:>9.2f}{row['latency_mean_s']:>11.2f}"
        )
    result = {
        "grid": "1 model (local:smollm2-135m) × 2 prompts × 8 scenarios, 1 candidate, 64 tokens",
        "cpu_count": os.cpu_count(),
        "llama_threads": args.threads,
        "load_avg_before": round(load_before, 1),
        "load_avg_after": round(os.getloadavg()[0], 1),
        "rows": rows,
        "samples": samples,
    }
    out = ROOT / "benchmarks" / "results" / "inflight.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
