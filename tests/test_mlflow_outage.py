"""MLflow outages lose nothing: the database is written first, MLflow gets the backlog later.

A real `mlflow server` is stopped in the middle of a run and started again; `benchlib sync`
then pushes what it missed: the run has exactly one MLflow run, its cells table holds every
cell with all it should.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from benchlib.pipeline import events
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import MlflowPending, RunStatus
from benchlib.tracking import outbox as tracking_outbox
from tests.conftest import TIPS
from tests.support.cli import benchlib
from tests.support.instant import MODEL, instant_app
from tests.support.mlflow_cells import cells_table
from tests.support.mlflow_server import MlflowServer
from tests.support.servers import serve_app
from tests.test_flow import run_flow


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
    """Exactly one MLflow run for the benchmark run and one per (model, prompt), finished, with
    its artifacts and a cells table holding every cell once, scores included."""
    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found = client.search_runs([experiment_id], f"tags.`benchlib.run_id` = '{run_id}'")
    groups = {(c.model, c.prompt_version) for c in runs.run_cells(run_id)}
    assert sorted(r.data.tags["benchlib.kind"] for r in found) == ["benchmark"] + ["group"] * len(
        groups
    )
    assert all(r.info.status == "FINISHED" for r in found)
    mlflow_run = next(r for r in found if r.data.tags["benchlib.kind"] == "benchmark")
    run = runs.get_run(run_id)
    assert run.mlflow_run_id == mlflow_run.info.run_id
    assert mlflow_run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run.mlflow_run_id)} >= {
        "rubric.json",
        "leaderboard.json",
        "report.html",
        "cells.json",
    }
    table = cells_table(client, run)
    assert list(table["cell_id"]) == [cell.id for cell in runs.run_cells(run_id)]
    for column in ("latency_mean_s", "provider_calls", "format_ok", "auto_composite"):
        assert table[column].notna().all(), column


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

    mlflow_server.start()
    synced = benchlib("sync", run_id)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert behind_in_listing(run_id) == 0
    assert_all_in_mlflow(mlflow_server.url, run_id, "outage")

    # Entries whose push reached MLflow before the process died are pushed again later: the
    # run's creation finds the MLflow run it made, the cells table is written over.
    run = runs.get_run(run_id)
    with session() as s:
        replayed = {"params": run.config, "rubric": run.rubric}
        s.add(MlflowPending(run_id=run_id, kind="run", payload=replayed, attempts=1))
        s.add(MlflowPending(run_id=run_id, kind="cell", payload={}, attempts=1))
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
    with session() as s:
        tracking_outbox.enqueue(s, run_id, "update", {"tags": {"bad key!": "x"}})
        tracking_outbox.enqueue(s, run_id, "update", {"tags": {"reviewed": "yes"}})
    assert tracking_outbox.sync(run_id, timeout_s=30) == 1
    assert "bad key!" in tracking_outbox.last_error(run_id)
    tags = MlflowClient(mlflow_server.url).get_run(runs.get_run(run_id).mlflow_run_id).data.tags
    assert tags["reviewed"] == "yes" and "bad key!" not in tags
    # Refused at every try: set aside with its error, no longer behind, listed by `sync`.
    for _ in range(tracking_outbox.MAX_ATTEMPTS - 1):
        tracking_outbox.sync(run_id, timeout_s=30)
    assert behind_in_listing(run_id) == 0
    [entry] = tracking_outbox.set_aside(run_id)
    assert "bad key!" in entry.error
    listed = benchlib("sync", run_id)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "set aside" in listed.stdout and "bad key!" in listed.stdout
    retried = benchlib("sync", run_id, "--retry-set-aside")
    assert "1 set-aside item(s) back in line" in retried.stdout
    # Tried again at once; still refused, so set aside again, with the new try's time.
    [again] = tracking_outbox.set_aside(run_id)
    assert again.id == entry.id and again.set_aside_at > entry.set_aside_at


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


def test_unwritable_artifact_store_costs_only_the_artifacts(
    prefect_api: str, instant_url: str, tmp_path: Path
) -> None:
    """The set-up users describe: the server's artifact root is a `file://` folder on its
    disk, which the client must write itself (`--no-serve-artifacts`) and cannot. Runs,
    params, metrics, tags, traces and assessments all arrive; the artifacts are set aside,
    reported once; nothing is held up and `benchlib sync` does not fail for them."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact root's parent should be")
    root = (blocker / "artifacts").as_uri()
    server = MlflowServer(tmp_path, ["--default-artifact-root", root, "--no-serve-artifacts"])
    server.start()
    try:
        config = {
            "suite": str(TIPS),
            "models": [f"openai:{MODEL}"],
            "openai_base_url": f"{instant_url}/v1",
            "prompts": ["v1", "v2-mentor"],
            "n_scenarios": 2,
            "n_candidates": 1,
            "judge": "skip",
            "mlflow_url": server.url,
            "mlflow_flush_s": 60,
            "experiment": "unwritable-artifacts",
        }
        run_id = run_flow(config)
        assert behind_in_listing(run_id) == 0
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("unwritable-artifacts").experiment_id
        found = client.search_runs([experiment], f"tags.`benchlib.run_id` = '{run_id}'")
        assert len(found) == 3 and all(r.info.status == "FINISHED" for r in found)
        groups = [r for r in found if r.data.tags["benchlib.kind"] == "group"]
        assert all(
            "composite_mean" in r.data.metrics or "auto_composite_mean" in r.data.metrics
            for r in groups
        )
        assert all(r.data.tags["status"] == "completed" for r in found)
        traces = client.search_traces(locations=[experiment], max_results=100)
        assert len(traces) == 4
        assert all(any(a.source.source_type == "CODE" for a in t.info.assessments) for t in traces)
        refused = tracking_outbox.set_aside(run_id)
        assert refused and all("artifact store refused a write" in e.error for e in refused)
        listed = benchlib("sync", run_id)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert listed.stdout.count("artifact store refused a write") == 1
        assert "--retry-set-aside" in listed.stdout
    finally:
        server.stop()
