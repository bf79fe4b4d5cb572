"""Reliability: a grid run through the fault proxy (random faults of every kind in front of the
embedded model), its process SIGKILLed in the middle of collect, then `benchlib resume RUN`.

Counts what went in (requests, faults by kind, the kill) and what came out: cells failed (with
their reasons), records duplicated in the database or MLflow, answers generated twice, results
lost (must be 0). Prints a table and writes benchmarks/results/reliability.json.
    .venv/bin/python benchmarks/reliability.py [--fault-rate 0.3] [--seed 7] [--kill-at 40]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from benchlib.generation.providers.local import LlamaServer, embedded_model_path, free_port
from benchlib.settings import PREFECT_SERVER_ENV, tracking_uri
from benchlib.store import runs
from benchlib.store.records import CellStatus, RunStatus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's fault proxy and MLflow table reader
from benchmarks.overhead import wait_healthy  # noqa: E402
from tests.support.faults import Fault, fault_proxy, random_schedule  # noqa: E402
from tests.support.mlflow_cells import cells_table  # noqa: E402

GRID = {
    "suite": str(ROOT / "prompts" / "tips"),
    "models": ["openai:smollm2"],
    "n_candidates": 2,  # 3 prompt versions × 8 scenarios = 24 cells, 48 answers
    "max_tokens": 48,
    "max_attempts_per_cell": 4,  # two retries per cell: some cells run out and fail
    "request_timeout_s": 30,  # a stall costs this much
    "max_backoff_s": 2,
    "experiment": "reliability",
    "judge": "skip",
}


def wait_until(condition, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchlib.cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kill-at", type=int, default=40, help="chat request held, then killed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="benchlib-reliability-"))
    os.environ.update(
        BENCHLIB_HOME=str(work / "home"),
        PREFECT_HOME=str(work / "prefect-home"),
        **PREFECT_SERVER_ENV,
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    port = free_port()
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    prefect = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # One thread: on a shared 2-core machine two fight other processes and run >20× slower.
    llama = LlamaServer(embedded_model_path(), "smollm2", threads=1)
    wait_healthy(f"http://127.0.0.1:{port}/api/health")
    schedule = random_schedule(
        args.kill_at - 1, args.fault_rate, args.seed, stall_s=GRID["request_timeout_s"] * 2
    )
    schedule += [Fault("stall", seconds=600)]  # the request in flight when the process dies
    schedule += random_schedule(200, args.fault_rate, args.seed + 1, GRID["request_timeout_s"] * 2)
    start = time.perf_counter()
    try:
        with fault_proxy(llama.url, schedule) as proxy:
            config = work / "grid.yaml"
            config.write_text(yaml.safe_dump(GRID | {"openai_base_url": f"{proxy.url}/v1"}))
            log = (work / "run.log").open("w")
            first = subprocess.Popen(
                cli("run", GRID["suite"], "--config", str(config)),
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            wait_until(
                lambda: proxy.seen >= args.kill_at or first.poll() is not None,
                "the request to kill at",
                1800,
            )
            if first.poll() is not None:
                raise RuntimeError(f"the run ended before the kill: see {log.name}")
            first.kill()
            first.wait()
            [run] = runs.list_runs(limit=1)
            done_before = {c.id for c in runs.run_cells(run.id) if c.status != "pending"}
            before = {"requests": proxy.seen, "answers": proxy.forwarded}
            resumed = subprocess.run(
                cli("resume", run.id), cwd=ROOT, capture_output=True, text=True, check=False
            )
            if resumed.returncode:
                raise RuntimeError(f"resume failed:\n{resumed.stderr[-3000:]}")
    finally:
        llama.stop()
        prefect.terminate()
        prefect.wait()
    wall_s = time.perf_counter() - start

    run = runs.get_run(run.id)
    cells = runs.run_cells(run.id)
    candidates = runs.run_candidates(run.id)
    mlflow = MlflowClient(tracking_uri(""))
    experiment = mlflow.get_experiment_by_name(GRID["experiment"])
    mlflow_runs = mlflow.search_runs(
        [experiment.experiment_id], f"tags.`benchlib.run_id` = '{run.id}'"
    )
    table_cells = list(cells_table(mlflow, run)["cell_id"])
    by_status = Counter(c.status for c in cells)
    identities = {(c.cell_id, c.index, c.step) for c in candidates}
    expected = {(c.id, i, "output") for c in cells if c.status == "completed" for i in range(2)}
    lost = len(expected - identities) + sum(
        1 for c in cells if c.id in done_before and c.status == "pending"
    )
    result = {
        "cells": len(cells),
        "requests": proxy.seen,
        "model_answers": proxy.forwarded,
        "faults_injected": dict(sorted(proxy.injected.items())),
        "kills": 1,
        "before_kill": before | {"cells_done": len(done_before)},
        "cells_completed": by_status[CellStatus.completed],
        "cells_failed": by_status[CellStatus.failed],
        "cells_pending": by_status[CellStatus.pending],
        "failure_reasons": sorted({c.error.split(":")[0] for c in cells if c.error}),
        "duplicate_candidates": len(candidates) - len(identities),
        "mlflow_runs": len(mlflow_runs),
        "duplicate_mlflow_cells": len(table_cells) - len(set(table_cells)),
        "mlflow_table_cells": len(table_cells),
        "answers_generated_twice": proxy.regenerated(),
        "results_lost": lost,
        "run_status": run.status,
        "wall_s": round(wall_s, 1),
    }
    print(f"run {run.id}: {run.status} ({run.error or 'no failures'}) in {wall_s:.0f} s")
    for key, value in result.items():
        print(f"{key:<24} {value}")
    out = ROOT / "benchmarks" / "results" / "reliability.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    if lost or run.status not in (RunStatus.completed, RunStatus.completed_with_failures):
        sys.exit("results were lost or the run did not finish")


if __name__ == "__main__":
    main()
