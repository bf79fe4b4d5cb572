"""What an MLflow user finds of a run, read through MLflow's own client: (model, prompt) runs
to compare, filtered on `judge_pending`, params and metrics; every candidate a trace with the
scorers' and two judges' assessments, written once whatever the retries; the prompt registry;
the cells table through the documented `load_table` call; MLFLOW_TRACKING_URI honoured."""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from benchlib.evaluation import judging, reports
from benchlib.settings import default_mlflow_uri
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import MlflowPending
from benchlib.tracking import outbox as tracking_outbox
from tests.conftest import TIPS
from tests.support.browser import launch, needs_chromium
from tests.support.cli import benchlib
from tests.support.instant import MODEL, instant_app
from tests.support.mlflow_server import MlflowServer
from tests.support.servers import serve_app
from tests.test_flow import run_flow

MODEL_SPEC = f"openai:{MODEL}"


@pytest.fixture(scope="module")
def instant_url() -> Iterator[str]:
    with serve_app(instant_app(), "/v1/models") as url:
        yield url


def config(instant_url: str, experiment: str, **extra) -> dict:
    return {
        "suite": str(TIPS),
        "models": [MODEL_SPEC],
        "openai_base_url": f"{instant_url}/v1",
        "prompts": ["v1", "v2-mentor"],
        "n_scenarios": 2,
        "n_candidates": 2,
        "judge": "human",
        "no_cache": True,
        "experiment": experiment,
        **extra,
    }


def judge_everything(run_id: str, judge: str, best: bool, comment: str) -> None:
    run = runs.get_run(run_id)
    levels = {c.name: (max if best else min)(c.scores) for c in judging.rubric_of(run).criteria}
    scored = [
        judging.Scored(item_id=item.item_id, scores=levels, comment=comment)
        for item in judging.judge_items(run)
    ]
    judging.apply_judgements(run_id, judge, scored, source="test")


@pytest.fixture(scope="module")
def judged_run(prefect_api: str, instant_url: str) -> str:
    """A run judged by two people after it finished (the CLI's way: the flow does not wait)."""
    run_id = run_flow(config(instant_url, "views", mlflow_flush_s=120))
    assert MlflowClient(default_mlflow_uri()).search_runs(
        [experiment_id("views")], "tags.judge_pending = 'true'"
    ), "a run waiting for judges is found by its tag"
    judge_everything(run_id, "judge-ana", True, "clear")
    judge_everything(run_id, "judge-ben", False, "too vague")
    reports.refresh_leaderboard(run_id)
    assert tracking_outbox.sync(run_id, timeout_s=120) == 0, tracking_outbox.last_error(run_id)
    assert not tracking_outbox.set_aside(run_id)
    return run_id


def experiment_id(name: str) -> str:
    return MlflowClient(default_mlflow_uri()).get_experiment_by_name(name).experiment_id


def test_runs_to_compare(judged_run: str) -> None:
    client = MlflowClient(default_mlflow_uri())
    experiment = experiment_id("views")
    mine = f"tags.`benchlib.run_id` = '{judged_run}'"
    groups = client.search_runs([experiment], f"{mine} and tags.`benchlib.kind` = 'group'")
    assert sorted(r.info.run_name for r in groups) == [
        f"{MODEL_SPEC} · v1",
        f"{MODEL_SPEC} · v2-mentor",
    ]
    parent = runs.get_run(judged_run).mlflow_run_id
    for group in groups:
        assert group.data.tags["mlflow.parentRunId"] == parent
        assert group.data.tags["status"] == "completed"
        assert group.data.tags["suite"] == "tips"
        assert group.data.params["model"] == MODEL_SPEC
        assert group.data.params["prompt_hash"] and group.data.params["rubric_hash"]
        assert group.info.status == "FINISHED"
        metrics = group.data.metrics
        for name in ("composite_mean", "composite_ci_low", "auto_composite", "failure_rate"):
            assert name in metrics, name
        assert {"latency_p50_s", "latency_p95_s", "tokens_per_s", "judge_coverage"} <= set(metrics)
        assert metrics["judge_coverage"] > 0
    assert not client.search_runs([experiment], f"{mine} and tags.judge_pending = 'true'")
    assert len(client.search_runs([experiment], f"{mine} and tags.judge_pending = 'false'")) == 3
    v1 = client.search_runs([experiment], f"{mine} and params.prompt_version = 'v1'")
    assert [r.info.run_name for r in v1] == [f"{MODEL_SPEC} · v1"]
    assert client.search_runs([experiment], f"{mine} and metrics.failure_rate = 0")
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {"rubric.json", "leaderboard.json", "report.html", "cells.json"} <= artifacts
    report = Path(client.download_artifacts(parent, "report.html")).read_text()
    assert "completed" in report and "status scoring" not in report


def test_every_candidate_a_trace_with_code_and_human_feedback(judged_run: str) -> None:
    mlflow.set_tracking_uri(default_mlflow_uri())
    traces = mlflow.search_traces(
        locations=[experiment_id("views")],
        filter_string=f"tags.`benchlib.run_id` = '{judged_run}'",
        return_type="list",
        max_results=500,
    )
    candidates = runs.run_candidates(judged_run)
    assert len(traces) == len(candidates) == 2 * 2 * 2
    for trace in traces:
        assert trace.info.tags["model"] == MODEL_SPEC and trace.info.tags["scenario_hash"]
        root = trace.data.spans[0]
        assert root.inputs["scenario_id"] == trace.info.tags["scenario_id"]
        kinds = Counter(span.span_type for span in trace.data.spans)
        assert kinds["CHAT_MODEL"] >= 1, kinds
        call = next(span for span in trace.data.spans if span.span_type == "CHAT_MODEL")
        assert call.inputs["messages"] and call.attributes["benchlib.attempt"] >= 1
        by_source = Counter(
            (a.source.source_type, a.source.source_id) for a in trace.info.assessments
        )
        assert by_source[("CODE", "scoring-v1")] >= 2
        assert by_source[("HUMAN", "judge-ana")] == by_source[("HUMAN", "judge-ben")] >= 1
        names = Counter((a.name, a.source.source_id) for a in trace.info.assessments)
        assert max(names.values()) == 1, "no assessment twice"
        ben = [a for a in trace.info.assessments if a.source.source_id == "judge-ben"]
        assert ben and all(a.rationale == "too vague" for a in ben)
        assert any(a.name == "composite" for a in trace.info.assessments)
    group_runs = {
        r.info.run_name: r.info.run_id
        for r in MlflowClient(default_mlflow_uri()).search_runs(
            [experiment_id("views")], "tags.`benchlib.kind` = 'group'"
        )
    }
    linked = mlflow.search_traces(
        locations=[experiment_id("views")],
        run_id=group_runs[f"{MODEL_SPEC} · v1"],
        return_type="list",
    )
    assert len(linked) == 4 and all(t.info.tags["prompt_version"] == "v1" for t in linked)


def test_replayed_entries_duplicate_nothing(judged_run: str) -> None:
    """A push cut short and repeated, a judge applying again with a changed comment."""
    with session() as s:
        s.add(MlflowPending(run_id=judged_run, kind="traces", payload={}, attempts=1))
        s.add(MlflowPending(run_id=judged_run, kind="traces", payload={}, attempts=1))
    assert tracking_outbox.sync(judged_run, timeout_s=60) == 0
    mlflow.set_tracking_uri(default_mlflow_uri())
    traces = mlflow.search_traces(
        locations=[experiment_id("views")],
        filter_string=f"tags.`benchlib.run_id` = '{judged_run}'",
        return_type="list",
    )
    assert len(traces) == 8
    for trace in traces:
        keys = Counter((a.name, a.source.source_id) for a in trace.info.assessments)
        assert max(keys.values()) == 1


def test_prompt_versions_in_the_registry_registered_once(judged_run: str, instant_url: str) -> None:
    client = MlflowClient(default_mlflow_uri())
    prompt = client.load_prompt("prompts:/tips-v1/1")
    assert prompt.tags["benchlib.prompt_hash"] == runs.run_cells(judged_run)[0].prompt_hash
    assert [m["role"] for m in prompt.template] == ["system", "user"]
    prompt_hash = runs.run_cells(judged_run)[0].prompt_hash

    def versions() -> list[str]:
        """Other tests of the session may register edited copies of tips as new versions."""
        found = client.search_prompt_versions("tips-v1")
        return [v.tags.get("benchlib.prompt_hash", "") for v in found]

    before = versions()
    again = run_flow(config(instant_url, "views", judge="skip", prompts=["v1"]))
    assert tracking_outbox.sync(again, timeout_s=60) == 0
    assert versions() == before and before.count(prompt_hash) == 1


def test_cells_table_snippet_as_documented(judged_run: str) -> None:
    """docs/mlflow.md's snippet, as written there."""
    run = runs.get_run(judged_run)
    mlflow.set_tracking_uri(default_mlflow_uri())
    mlflow.set_experiment(run.experiment)
    cells = mlflow.load_table("cells.json", run_ids=[run.mlflow_run_id])
    assert list(cells["cell_id"]) == [cell.id for cell in runs.run_cells(judged_run)]


def test_mlflow_tracking_uri_is_used_and_said(
    prefect_api: str, instant_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    config_path = tmp_path / "run.yaml"
    config_path.write_text(
        f"models: [{MODEL_SPEC}]\nopenai_base_url: {instant_url}/v1\nprompts: [v1]\n"
        "n_scenarios: 1\nn_candidates: 1\njudge: skip\nexperiment: from-env\n"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    done = benchlib("run", str(TIPS), "--config", str(config_path), prefect_api=prefect_api)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"MLflow: {store} (from MLFLOW_TRACKING_URI)" in " ".join(done.stdout.split())
    found = MlflowClient(store).get_experiment_by_name("from-env")
    assert found is not None and MlflowClient(store).search_runs([found.experiment_id])
    local = MlflowClient(default_mlflow_uri()).get_experiment_by_name("from-env")
    assert local is None, "nothing went to the default store"


@needs_chromium
def test_traces_view_in_chromium_lists_traces_with_assessments(
    judged_run: str, benchlib_home: Path
) -> None:
    """MLflow's own UI, served by `mlflow server` over the run's store: the experiment's
    Traces view lists the run's traces; a trace opened shows the scorers' and judges'
    feedback (the panel groups values by name: judges' ids show on hover only)."""
    from playwright.sync_api import sync_playwright

    server = MlflowServer(benchlib_home)
    server.start()
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{server.url}/#/experiments/{experiment_id('views')}/traces")
            rows = page.get_by_text('"scenario_id": "developer-morning"')
            rows.first.wait_for(timeout=120_000)
            assert page.get_by_text("format_ok").count() >= 1  # an assessment column
            page.wait_for_timeout(2000)  # a first-visit tip may open over the list
            if page.get_by_text("Got it").count():
                page.get_by_text("Got it").first.click()
            rows.first.click()
            page.get_by_role("button", name="Assess").first.click()
            feedback = page.get_by_text("Feedback (")
            feedback.first.wait_for(timeout=60_000)
            panel = page.inner_text("body")
            assert "completeness" in panel and "auto_composite" in panel
            # Criteria come only from judges (their mean is not logged as feedback).
            criteria = [c.name for c in judging.rubric_of(runs.get_run(judged_run)).criteria]
            assert all(name in panel for name in criteria), (criteria, panel[-800:])
            page.screenshot(path=str(benchlib_home / "mlflow-trace.png"))
            browser.close()
    finally:
        server.stop()
