"""A benchmark process killed (SIGKILL) in the middle of collect, then `benchlib resume RUN`."""

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from benchlib.config import build_config
from benchlib.generation import collect
from benchlib.settings import tracking_uri
from benchlib.store import runs
from benchlib.store.records import CellStatus, RunStatus
from benchlib.tracking import outbox as tracking_outbox
from tests.conftest import ROOT, TIPS
from tests.support.cli import benchlib
from tests.support.faults import PASS, Fault, fault_proxy
from tests.support.mlflow_cells import cells_table


def wait_for(condition, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_killed_run_resumes_without_generating_or_recording_twice(
    prefect_api: str, llm_url: str, tmp_path: Path
) -> None:
    """4 cells × 2 candidates. The proxy answers 3 requests (cell 1, and cell 2's first
    candidate) and holds the 4th; the process is killed while it waits. The resume generates
    only the 5 answers nobody received, and records every cell once."""
    with fault_proxy(llm_url, [PASS] * 3 + [Fault("stall", seconds=600)]) as proxy:
        config = tmp_path / "run.yaml"
        values = {
            "models": ["openai:smollm2"],
            "openai_base_url": f"{proxy.url}/v1",
            "prompts": ["v2-mentor"],
            "n_scenarios": 4,
            "n_candidates": 2,
            "max_tokens": 256,
            "seed": 4242,  # no other test's cached answers
            "experiment": "resume-test",
            "judge": "skip",
        }
        config.write_text(yaml.safe_dump(values))
        process = subprocess.Popen(
            [sys.executable, "-m", "benchlib.cli", "run", str(TIPS), "--config", str(config)],
            env=os.environ | {"PREFECT_API_URL": prefect_api},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: proxy.seen == 4 or process.poll() is not None, "the 4th request")
            assert process.poll() is None, "the run ended before it could be killed"
            [run] = [r for r in runs.list_runs() if r.experiment == "resume-test"]

            alive = benchlib("resume", run.id, prefect_api=prefect_api)
            assert alive.returncode == 2 and "is alive; --force runs it again" in alive.stderr
        finally:
            process.kill()
            process.wait()
        forwarded_before = proxy.forwarded
        assert forwarded_before == 3
        assert [c.status for c in runs.run_cells(run.id)] == ["completed"] + ["pending"] * 3

        resumed = benchlib("resume", run.id, prefect_api=prefect_api)
        assert resumed.returncode == 0, resumed.stderr

    assert proxy.forwarded == 8 and proxy.regenerated() == 0  # 8 answers, none twice
    run = runs.get_run(run.id)
    assert run.status == RunStatus.completed
    cells = runs.run_cells(run.id)
    assert all(c.status == CellStatus.completed for c in cells)
    candidates = runs.run_candidates(run.id)
    assert len(candidates) == 8
    assert len({(c.cell_id, c.index, c.step) for c in candidates}) == 8
    # The answer received before the kill came back from the response cache.
    assert [c.cell_id for c in candidates if c.cached] == [cells[1].id]

    table = cells_table(MlflowClient(tracking_uri("")), run)
    assert list(table["cell_id"]) == [c.id for c in cells]


def test_a_cell_recorded_before_a_crash_is_not_run_or_logged_again(
    small_config: dict, llm_url: str
) -> None:
    """The window a Prefect re-run cannot see: the cell's transaction committed, then the process
    died before Prefect stored the task's result. Running the cell again returns what is
    recorded: no provider call, no second set of candidates, no second row in MLflow."""
    with fault_proxy(llm_url) as proxy:
        values = small_config | {"openai_base_url": f"{proxy.url}/v1", "experiment": "recorded"}
        plan = runs.plan_run(build_config(values))
        cell = plan.cells[0]
        first = collect.run_cell(plan.context, cell)
        again = collect.run_cell(plan.context, cell)
    assert again == first and first.status == CellStatus.completed
    assert proxy.forwarded == 2
    assert len([c for c in runs.run_candidates(plan.context.run_id) if c.cell_id == cell.id]) == 2
    assert tracking_outbox.sync(plan.context.run_id, timeout_s=60) == 0
    run = runs.get_run(plan.context.run_id)
    table = cells_table(MlflowClient(tracking_uri("")), run)
    assert list(table["cell_id"]) == [cell.id]
