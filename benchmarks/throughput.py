"""Harness throughput: a grid of 2,000 cells against a loopback OpenAI-compatible server that
answers at once (tests/support/instant.py, in a process of its own), through the whole pipeline
in this process — Prefect flow (an ephemeral Prefect server, or `--prefect running`: a running
`prefect server start`, as with the local stack), the database, the response cache (cold),
scoring, the leaderboard, and MLflow (a sqlite store, or `--mlflow server`: a real `mlflow
server` subprocess) through the outbox.

    .venv/bin/python benchmarks/throughput.py [--cells 2000] [--mlflow sqlite|server]
        [--prefect ephemeral|running] [--traces all|final|off]

Prints cells/s for the collect phase (first cell started → last cell recorded) and for the
whole run (plan → MLflow caught up), the time MLflow needed beyond collect, and this process's
peak RSS; writes benchmarks/results/throughput-MLFLOW-PREFECT[-traces-MODE].json (the
default mode, `final`, keeps the old name). Target: ≥ 50 cells/s.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib.generation.providers.local import free_port  # noqa: E402
from benchlib.settings import PREFECT_SERVER_ENV  # noqa: E402
from benchmarks.overhead import prefect_server, wait_healthy  # noqa: E402

PROMPTS = ["v1", "v2-mentor"]


def write_suite(folder: Path, n_scenarios: int) -> None:
    """The tips suite with `n_scenarios` distinct scenarios (no integrity hashes: generated)."""
    shutil.copytree(ROOT / "prompts" / "tips", folder)
    scenarios = [
        {
            "id": f"s{i:05d}",
            "persona": f"persona number {i}",
            "tasks": f"task {i}; task {i + 1}; a meeting at {8 + i % 9}:00",
            "time_slot": "Monday 8:00, the start of the day",
        }
        for i in range(n_scenarios)
    ]
    (folder / "scenarios.yaml").write_text(yaml.safe_dump({"scenarios": scenarios}))


def serve_instant(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.instant", str(port)], cwd=ROOT)
    wait_healthy(f"http://127.0.0.1:{port}/v1/models")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--mlflow", choices=["sqlite", "server"], default="sqlite")
    parser.add_argument("--prefect", choices=["ephemeral", "running"], default="ephemeral")
    parser.add_argument("--traces", choices=["all", "final", "off"], default="final")
    parser.add_argument("--out", type=Path, help="default: results/throughput-MLFLOW-PREFECT.json")
    args = parser.parse_args()
    suffix = "" if args.traces == "final" else f"-traces-{args.traces}"
    name = f"throughput-{args.mlflow}-{args.prefect}{suffix}.json"
    args.out = args.out or ROOT / "benchmarks" / "results" / name

    work = Path(tempfile.mkdtemp(prefix="benchlib-throughput-"))
    os.environ["BENCHLIB_HOME"] = str(work / "home")
    (work / "prefect").mkdir()
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.update(PREFECT_SERVER_ENV)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    write_suite(work / "suite", args.cells // len(PROMPTS))
    port = free_port()
    model_server = serve_instant(port)
    mlflow_url = ""
    try:
        with ExitStack() as servers:
            if args.mlflow == "server":
                from tests.support.mlflow_server import MlflowServer

                (work / "mlflow").mkdir()
                mlflow_server = MlflowServer(work / "mlflow")
                mlflow_server.start()
                servers.callback(mlflow_server.stop)
                mlflow_url = mlflow_server.url
            if args.prefect == "running":
                os.environ["PREFECT_API_URL"] = servers.enter_context(
                    prefect_server(dict(os.environ))
                )
            base_url = f"http://127.0.0.1:{port}/v1"
            result = measure(
                work / "suite", base_url, mlflow_url, args.mlflow, args.prefect, args.traces
            )
    finally:
        model_server.terminate()
        model_server.wait()
        shutil.rmtree(work, ignore_errors=True)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def measure(
    suite: Path, base_url: str, mlflow_url: str, mlflow_kind: str, prefect_kind: str, traces: str
) -> dict:
    from benchlib.config import build_config
    from benchlib.pipeline import events
    from benchlib.pipeline.orchestration import ensure_gpu_limit
    from benchlib.store import runs
    from benchlib.tracking import outbox as tracking_outbox
    from flows.benchmark import benchmark

    config = build_config(
        {
            "suite": str(suite),
            "models": ["openai:instant"],
            "openai_base_url": base_url,
            "prompts": PROMPTS,
            "n_candidates": 1,
            "judge": "skip",
            "mlflow_url": mlflow_url,
            "mlflow_traces": traces,
            "mlflow_flush_s": 3600,
        }
    )
    marks: dict[str, float] = {}

    def on_event(kind: str, data: dict) -> None:
        now = time.perf_counter()
        if kind == "cell_done":
            marks.setdefault("first_cell", now)
            marks["last_cell"] = now

    events.subscribe(on_event)
    start = time.perf_counter()
    ensure_gpu_limit()
    run_id = benchmark(**config.model_dump())["run_id"]
    wall = time.perf_counter() - start
    run = runs.get_run(run_id)
    cells = runs.run_cells(run_id)
    first = min(c.started_at for c in cells)
    last = max(c.finished_at for c in cells)
    collect_s = (last - first).total_seconds()
    behind = tracking_outbox.behind([run_id]).get(run_id, 0)
    return {
        "cells": len(cells),
        "completed": sum(c.status == "completed" for c in cells),
        "status": run.status,
        "mlflow": mlflow_kind,
        "prefect": prefect_kind,
        "mlflow_behind_at_end": behind,
        "mlflow_traces": traces,
        "mlflow_set_aside": len(tracking_outbox.set_aside(run_id)),
        "collect_s": round(collect_s, 2),
        "collect_cells_per_s": round(len(cells) / collect_s, 1),
        "start_to_first_cell_s": round(marks["first_cell"] - start, 2),
        "after_collect_s": round(wall - (marks["last_cell"] - start), 2),
        "wall_s": round(wall, 2),
        "wall_cells_per_s": round(len(cells) / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_cells_per_s": 50,
    }


def print_table(result: dict) -> None:
    rows = [
        ("cells (completed)", f"{result['cells']} ({result['completed']})"),
        (
            "MLflow",
            f"{result['mlflow']}, traces {result['mlflow_traces']}, "
            f"{result['mlflow_behind_at_end']} items behind at end",
        ),
        ("Prefect server", result["prefect"]),
        ("start → first cell", f"{result['start_to_first_cell_s']} s"),
        ("collect", f"{result['collect_s']} s = {result['collect_cells_per_s']} cells/s"),
        ("after collect (score, compare, MLflow)", f"{result['after_collect_s']} s"),
        ("whole run", f"{result['wall_s']} s = {result['wall_cells_per_s']} cells/s"),
        ("peak RSS (this process)", f"{result['peak_rss_mb']} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
