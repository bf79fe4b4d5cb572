"""MLflow outages lose nothing: the database is written first, MLflow gets the backlog later.

A real `mlflow server` is stopped in the middle of a run and started again; `benchlib sync`
then pushes what it missed, and every cell has exactly one MLflow run with all it should hold.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sqlmodel import select

from benchlib import events, runs, tracking_outbox
from benchlib.db import session
from benchlib.records import MlflowPending, RunStatus
from tests.conftest import TIPS
from tests.support.cli import benchlib
from tests.support.instant import MODEL, instant_app
from tests.support.mlflow_server import MlflowServer
from tests.support.servers import serve_app
from tests.test_flow import run_flow

CELL_ARTIFACTS = {"prompt.json", "candidates.json", "responses.json"}


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def instant_url() -> Iterator[str]:
    with serve_app(instant_app(), "/v1/models") as url:
        yield url


def behind_in_listing(run_id: str) -> int:
    listing = benchlib("runs", "--json")
    assert listing.returncode == 0, listing.stderr
    return next(r["mlflow_behind"] for r in json.loads(listing.stdout) if r["id"] == run_id)


def assert_all_in_mlflow(url: str, run_id: str, experiment: str) -> None:
    """One parent run and exactly one finished child run per cell, each with its params,
    metrics (scores included) and artifacts."""
    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found = client.search_runs([experiment_id], f"tags.`benchlib.run_id` = '{run_id}'")
    parents = [r for r in found if r.data.tags.get("benchlib.kind") == "benchmark"]
    children = [r for r in found if r.data.tags.get("benchlib.kind") == "cell"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "rubric.json",
        "leaderboard.json",
        "report.html",
    }
    cells = runs.run_cells(run_id)
    assert sorted(c.data.tags["benchlib.cell_id"] for c in children) == sorted(c.id for c in cells)
    by_cell = {c.data.tags["benchlib.cell_id"]: c for c in children}
    for cell in cells:
        child = by_cell[cell.id]
        assert cell.mlflow_run_id == child.info.run_id
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.params["prompt_version"] == cell.prompt_version
        assert child.data.params["scenario_hash"] == cell.scenario_hash
        assert {"latency_mean_s", "provider_calls", "format_ok", "auto_composite"} <= set(
            child.data.metrics
        )
        assert {a.path for a in client.list_artifacts(child.info.run_id)} == CELL_ARTIFACTS


def test_mlflow_stopped_mid_run_then_synced(
    prefect_api: str, instant_url: str, mlflow_server: MlflowServer
) -> None:
    config = {
        "suite": str(TIPS),
        "models": [f"openai:{MODEL}"],
        "openai_base_url": f"{instant_url}/v1",
        "prompts": ["v1", "v2-mentor"],
        "n_candidates": 2,
        "judge": "skip",
        "no_cache": True,
        "mlflow_url": mlflow_server.url,
        "mlflow_flush_s": 1,
        "experiment": "outage",
    }
    done: list[str] = []

    def stop_after_third(kind: str, data: dict[str, Any]) -> None:
        if kind == "cell_done":
            done.append(data["cell"].id)
            if len(done) == 3:
                mlflow_server.stop()

    unsubscribe = events.subscribe(stop_after_third)
    try:
        run_id = run_flow(config)
    finally:
        unsubscribe()

    run = runs.get_run(run_id)
    assert run.status == RunStatus.completed and len(done) == run.n_cells == 16
    assert all(c.status == "completed" for c in runs.run_cells(run_id))
    behind = behind_in_listing(run_id)
    assert behind > 0
    shown = benchlib("show", run_id)
    assert f"MLflow: {behind} items behind" in shown.stdout
    down = benchlib("sync", run_id, "--timeout", "1")
    assert down.returncode == 1 and "items behind" in down.stdout

    # An entry whose push reached MLflow before the process died is pushed again later: keep
    # a copy of one cell's entry to replay once everything is in.
    with session() as s:
        replay = s.exec(select(MlflowPending).where(MlflowPending.kind == "cell")).first()

    mlflow_server.start()
    synced = benchlib("sync", run_id)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert behind_in_listing(run_id) == 0
    assert_all_in_mlflow(mlflow_server.url, run_id, "outage")

    with session() as s:
        s.add(MlflowPending(**replay.model_dump(exclude={"id"}) | {"attempts": 1}))
    assert tracking_outbox.sync(run_id, timeout_s=30) == 0
    assert_all_in_mlflow(mlflow_server.url, run_id, "outage")


def test_an_entry_mlflow_refuses_does_not_hold_up_the_rest(
    prefect_api: str, instant_url: str, mlflow_server: MlflowServer
) -> None:
    config = {
        "suite": str(TIPS),
        "models": [f"openai:{MODEL}"],
        "openai_base_url": f"{instant_url}/v1",
        "prompts": ["v1"],
        "n_scenarios": 1,
        "n_candidates": 1,
        "judge": "skip",
        "mlflow_url": mlflow_server.url,
    }
    run_id = run_flow(config)
    cell = runs.run_cells(run_id)[0]
    with session() as s:
        tracking_outbox.enqueue(s, run_id, "update", {"tags": {"bad key!": "x"}}, cell.id)
        tracking_outbox.enqueue(s, run_id, "update", {"tags": {"reviewed": "yes"}}, cell.id)
    assert tracking_outbox.sync(run_id, timeout_s=30) == 1
    assert "bad key!" in tracking_outbox.last_error(run_id)
    tags = MlflowClient(mlflow_server.url).get_run(cell.mlflow_run_id).data.tags
    assert tags["reviewed"] == "yes" and "bad key!" not in tags


def test_real_model_run_with_mlflow_down_from_the_start(
    prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    server = MlflowServer(tmp_path)  # its port is free: nothing answers there yet
    config = {
        **small_config,
        "prompts": ["v1"],
        "n_scenarios": 1,
        "judge": "skip",
        "mlflow_url": server.url,
        "mlflow_flush_s": 0,
        "experiment": "down-from-the-start",
    }
    run_id = run_flow(config)
    run = runs.get_run(run_id)
    assert run.status == RunStatus.completed and run.mlflow_run_id is None
    assert runs.run_candidates(run_id) and behind_in_listing(run_id) > 0
    server.start()
    try:
        assert benchlib("sync", run_id).returncode == 0
        assert_all_in_mlflow(server.url, run_id, "down-from-the-start")
        assert runs.get_run(run_id).mlflow_run_id
    finally:
        server.stop()


def test_a_backlog_folds_each_cell_s_later_updates_into_its_creation_in_order(
    prefect_api: str, instant_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pusher far behind (here: MLflow down for the whole run) finds a cell's scores queued
    after every other cell; it takes them with the cell's creation, wherever they are, but never
    lets a later update overtake one that cannot be folded (here: one that sets a status)."""
    server = MlflowServer(tmp_path)
    config = {
        "suite": str(TIPS),
        "models": [f"openai:{MODEL}"],
        "openai_base_url": f"{instant_url}/v1",
        "prompts": ["v1"],
        "n_scenarios": 3,
        "n_candidates": 1,
        "judge": "skip",
        "no_cache": True,
        "mlflow_url": server.url,
        "mlflow_flush_s": 0,
        "experiment": "folded-backlog",
    }
    run_id = run_flow(config)
    first = runs.run_cells(run_id)[0]
    with session() as s:
        note = {"tags": {"review": "first"}, "status": "FINISHED"}
        tracking_outbox.enqueue(s, run_id, "update", note, first.id)
        tracking_outbox.enqueue(s, run_id, "update", {"tags": {"review": "second"}}, first.id)
    server.start()
    try:
        monkeypatch.setattr(tracking_outbox, "BATCH", 2)  # the parent run and the first cell
        tracking_outbox._drain_batch(run_id, set())
        with session() as s:
            left = s.exec(select(MlflowPending.cell_id).where(MlflowPending.run_id == run_id))
            assert first.id not in set(left)  # its scores and both updates went with it
        run = MlflowClient(server.url).get_run(runs.run_cells(run_id)[0].mlflow_run_id)
        assert run.data.tags["review"] == "second"
        assert "auto_composite" in run.data.metrics
        assert tracking_outbox.sync(run_id, timeout_s=30) == 0
        assert_all_in_mlflow(server.url, run_id, "folded-backlog")
    finally:
        server.stop()
