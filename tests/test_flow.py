"""The real benchmark flow on a real Prefect server, against the embedded model."""

import itertools
import os
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect import get_client
from prefect.flow_engine import run_flow_sync
from prefect.states import Scheduled
from sqlmodel import select

from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.generation.providers.local import embedded_model_path, servers
from benchlib.pipeline import events
from benchlib.settings import tracking_uri
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import LLMCall, RunStatus, Score
from flows.benchmark import benchmark
from tests.support.faults import fault_proxy, http_error
from tests.support.mlflow_cells import cells_table


def run_flow(values: dict) -> str:
    return benchmark(**build_config(values).model_dump())["run_id"]


def assert_one_at_a_time(cells) -> None:
    ordered = sorted(cells, key=lambda c: c.started_at)
    for before, after in itertools.pairwise(ordered):
        assert before.finished_at <= after.started_at, (before.id, after.id)


@pytest.fixture(scope="module")
def small_run(prefect_api: str, small_config: dict) -> str:
    return run_flow(small_config)


@pytest.mark.db
def test_run_is_recorded_with_cells_candidates_and_calls(small_run: str) -> None:
    run = runs.get_run(small_run)
    assert run.status == RunStatus.completed and run.n_cells == 4
    assert run.flow_run_id and run.mlflow_run_id and run.finished_at
    cells = runs.run_cells(run.id)
    assert [(c.prompt_version, c.scenario_id) for c in cells] == [
        ("v1", "developer-morning"),
        ("v1", "developer-evening"),
        ("v2-mentor", "developer-morning"),
        ("v2-mentor", "developer-evening"),
    ]
    assert all(c.status == "completed" and c.prompt_hash and c.scenario_hash for c in cells)
    assert_one_at_a_time(cells)
    candidates = runs.run_candidates(run.id)
    assert len(candidates) == 8
    assert {c.seed for c in candidates} == {42, 43}
    assert all(c.output_hash and c.completion_tokens > 0 for c in candidates)
    with session() as s:
        calls = s.exec(select(LLMCall).where(LLMCall.run_id == run.id)).all()
        scores = s.exec(select(Score).where(Score.run_id == run.id)).all()
    assert len(calls) == 8 and all(c.latency_s > 0 and c.response for c in calls)
    scorers = {"format_ok", "overlong", "schema_validity", "completeness", "policy_compliance"}
    assert {s.name for s in scores} == scorers | {"stability", "auto_composite"}
    assert len(scores) == 8 * 7


def test_structured_prompt_version_gets_bare_json(small_run: str) -> None:
    rows = {row["prompt"]: row for row in runs.get_run(small_run).leaderboard["rows"]}
    assert rows["v2-mentor"]["scores"]["format_ok"] == 1.0
    assert rows["v2-mentor"]["rank"] == 1


@pytest.mark.db
def test_leaderboard_rows(small_run: str) -> None:
    board = runs.get_run(small_run).leaderboard
    assert board["metric"] == "auto_composite"
    assert [(r["model"], r["n_scenarios"], r["n_outputs"]) for r in board["rows"]] == [
        ("openai:smollm2", 2, 4)
    ] * 2
    for row in board["rows"]:
        assert row["judge_coverage"] == 0 and row["composite"] is None
        assert row["mean"] == row["auto_composite"] and row["failure_rate"] == 0
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
        assert row["latency_p50_s"] > 0 and row["tokens_per_s"] > 0


def test_mlflow_has_a_run_with_a_table_of_its_cells(small_run: str) -> None:
    run = runs.get_run(small_run)
    client = MlflowClient(tracking_uri(""))
    mlflow_run = client.get_run(run.mlflow_run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["temperature"] == "0.7" and mlflow_run.data.params["seed"] == "42"
    assert {"rubric.json", "leaderboard.json", "report.html", "cells.json"} <= {
        a.path for a in client.list_artifacts(run.mlflow_run_id)
    }
    table = cells_table(client, run)
    cells = runs.run_cells(run.id)
    assert list(table["cell_id"]) == [c.id for c in cells]
    assert list(table["scenario_id"]) == [c.scenario_id for c in cells]
    assert set(table["status"]) == {"completed"} and all(table["judge_pending"])
    assert all(table["provider_calls"] == 2) and all(table["completion_tokens"] > 0)
    assert all(table["latency_mean_s"] > 0) and all(table["tokens_per_s"] > 0)
    assert all(table["wall_s"] >= table["latency_mean_s"])
    candidates = runs.run_candidates(run.id)
    assert [sorted(outputs) for outputs in table["outputs"]] == [
        sorted(c.text for c in candidates if c.cell_id == cell.id) for cell in cells
    ]
    assert table["format_ok"].between(0, 1).all() and table["auto_composite"].notna().all()


def test_the_mlflow_pusher_yields_the_cpu(small_run: str) -> None:
    """On a CPU-only box the push competes with generation: its thread runs at nice 19, the
    rest of the process as it was started."""
    pusher = next(t for t in threading.enumerate() if t.name == "benchlib-mlflow-pusher")
    assert os.getpriority(os.PRIO_PROCESS, pusher.native_id) == 19
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) < 19


def test_prefect_shows_the_flow_run_and_its_leaderboard(small_run: str) -> None:
    run = runs.get_run(small_run)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run.flow_run_id)
        artifacts = client.read_artifacts()
    assert flow_run.state.is_completed()
    # Published by the compare subflow of this run.
    assert any(a.key == "leaderboard" and small_run in a.description for a in artifacts)


def test_models_run_model_major_one_cell_at_a_time_one_load_each(
    prefect_api: str, tmp_path: Path
) -> None:
    """Three models, listed out of order: each is loaded once (preflight reads the file and
    starts no server), its cells run back to back, and the run records the three loads."""
    path = str(embedded_model_path())
    started = servers.loads
    run_id = run_flow(
        {
            "models": ["local:smol-b", "local:smol-a", "local:smol-c"],
            "local_models": {"smol-a": path, "smol-b": path, "smol-c": path},
            "no_cache": True,  # it counts loads: every cell must generate
            "prompts": ["v1"],
            "n_scenarios": 2,
            "n_candidates": 1,
            "max_tokens": 16,
            "suite": str(Path(__file__).parent.parent / "prompts" / "tips"),
        }
    )
    cells = sorted(runs.run_cells(run_id), key=lambda c: c.started_at)
    models = ["local:smol-b"] * 2 + ["local:smol-a"] * 2 + ["local:smol-c"] * 2
    assert [c.model for c in cells] == models
    assert_one_at_a_time(cells)
    assert cells[0].model_digest == cells[2].model_digest
    assert servers.loads - started == 3
    assert [c.model_load_s > 0 for c in cells] == [True, False] * 3
    loads, load_s = runs.model_loads(run_id)
    assert loads == 3 and load_s == pytest.approx(sum(c.model_load_s for c in cells))


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(
    prefect_api: str, small_config: dict, llm_url: str
) -> None:
    # The first cell's two candidates are refused (400); the rest of the grid is served.
    with fault_proxy(llm_url, [http_error(400)]) as proxy:
        run_id = run_flow(
            small_config
            | {"openai_base_url": f"{proxy.url}/v1", "prompts": ["v1"], "n_candidates": 1}
        )
    run = runs.get_run(run_id)
    cells = runs.run_cells(run_id)
    assert run.status == RunStatus.completed_with_failures
    assert run.error == "1 of 2 cells failed"
    assert [c.status for c in cells] == ["failed", "completed"]
    assert "HTTP 400: injected 400" in cells[0].error
    assert run.leaderboard["rows"][0]["failure_rate"] == 0.5


def test_bad_plans_fail_before_anything_is_written(prefect_api: str, small_config: dict) -> None:
    before = len(runs.list_runs(limit=1000))
    with pytest.raises(BenchlibError, match="unknown prompt version"):
        run_flow(small_config | {"prompts": ["v7"]})
    with pytest.raises(BenchlibError, match="more than max_model_b"):
        run_flow(small_config | {"max_model_b": 0.05})
    assert len(runs.list_runs(limit=1000)) == before


@pytest.mark.db
def test_a_rerun_of_the_flow_run_does_not_redo_finished_cells(
    prefect_api: str, small_config: dict, llm_url: str, suite_copy: Path
) -> None:
    """Scoring fails after collect (a suite file broke); once fixed, the same flow run is run
    again: cells come back from Prefect's persisted results, nothing is generated twice."""
    rubric = suite_copy / "rubric.yaml"
    good = rubric.read_text()
    unsubscribe = events.subscribe(
        lambda kind, data: rubric.write_text("version: [") if kind == "cell_done" else None
    )
    values = small_config | {"suite": str(suite_copy), "prompts": ["v1"], "n_candidates": 1}
    parameters = build_config(values).model_dump()
    try:
        with fault_proxy(llm_url) as proxy:
            parameters["openai_base_url"] = f"{proxy.url}/v1"
            with pytest.raises(BenchlibError, match=r"rubric\.yaml:\d+: not valid YAML"):
                benchmark(**parameters)
            unsubscribe()
            rubric.write_text(good)
            run = runs.list_runs(limit=1)[0]
            assert run.status == RunStatus.failed and proxy.forwarded == 2
            # MLflow heard of the failure before the flow ended, with the reason.
            parent = MlflowClient(tracking_uri("")).get_run(run.mlflow_run_id)
            assert parent.info.status == "FAILED"
            assert "not valid YAML" in parent.data.tags["benchlib.error"]
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(run.flow_run_id, Scheduled(), force=True)
                flow_run = client.read_flow_run(run.flow_run_id)
            result = run_flow_sync(benchmark, flow_run=flow_run, parameters=parameters)
    finally:
        rubric.write_text(good)
    assert result["run_id"] == run.id
    assert proxy.forwarded == 2  # no cell generated again
    assert runs.get_run(run.id).status == RunStatus.completed
    assert MlflowClient(tracking_uri("")).get_run(run.mlflow_run_id).info.status == "FINISHED"
    with session() as s:
        assert len(s.exec(select(LLMCall).where(LLMCall.run_id == run.id)).all()) == 2


def test_an_ollama_model_is_kept_loaded_for_its_block_then_unloaded(
    prefect_api: str, small_config: dict, ollama_server
) -> None:
    url, state = ollama_server
    loads, unloads, chats = state.loads, state.unloads, state.chats
    run_id = run_flow(
        small_config
        | {"models": ["ollama:smollm2:135m"], "ollama_url": url, "prompts": ["v2-mentor"]}
    )
    assert [c.status for c in runs.run_cells(run_id)] == ["completed", "completed"]
    assert state.chats - chats == 2 * 2  # 2 cells × 2 candidates
    assert state.keep_alive_seen[-4:] == ["5m"] * 4  # kept loaded while its cells run
    assert state.loads - loads == 1  # loaded once for the block, not per call
    assert runs.model_loads(run_id) == (1, 0.5)  # the shim's load_duration
    assert state.unloads - unloads == 1  # keep_alive=0 once the block is done
