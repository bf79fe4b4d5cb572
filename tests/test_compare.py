"""Leaderboard statistics, the regression verdict, its JSON, the CLI's exit codes and the HTML
report in a real browser."""

import json
import uuid
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import scipy.stats
from mlflow.tracking import MlflowClient

from benchlib import runs
from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.leaderboard import Leaderboard, build_leaderboard
from benchlib.records import Candidate, Cell, Judgement, Score
from benchlib.settings import tracking_uri
from benchlib.stats import bootstrap_mean, krippendorff_alpha
from benchlib.suite import load_suite
from benchlib.verdict import EvalReport, evaluate
from flows.benchmark import benchmark
from tests.conftest import ROOT, TIPS
from tests.support.browser import launch, needs_chromium
from tests.support.cli import benchlib
from tests.support.crafted import make_run

SCHEMA_FILE = ROOT / "benchlib" / "schemas" / "eval-report.schema.json"


def test_bootstrap_interval_agrees_with_scipy() -> None:
    data = np.array([3.1, 2.5, 4.0, 3.3, 1.9, 2.8, 3.6, 4.2, 2.2, 3.0, 3.9, 2.6])
    ours = bootstrap_mean(data, seed=11, n_resamples=20_000)
    theirs = scipy.stats.bootstrap(
        (data,), np.mean, n_resamples=20_000, method="percentile", random_state=5
    ).confidence_interval
    assert ours.mean == pytest.approx(data.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.03)
    assert ours.high == pytest.approx(theirs.high, abs=0.03)
    assert bootstrap_mean(data, seed=11) == bootstrap_mean(data, seed=11)


def test_krippendorff_alpha_on_the_worked_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 observers × 12 units.
    n = np.nan
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert krippendorff_alpha(np.array(data)) == pytest.approx(0.849, abs=0.0005)
    assert krippendorff_alpha(np.array([[1.0, 2.0, 3.0]])) is None  # one judge
    assert krippendorff_alpha(np.array([[4.0, 4.0], [4.0, 4.0]])) == 1.0


def board_for(groups: dict[str, list[float]], judgements=()) -> Leaderboard:
    """Candidates of prompt versions over scenarios s0..sN with the given auto_composite."""
    cells, candidates, scores = [], [], []
    for prompt, values in groups.items():
        for i, value in enumerate(values):
            cell = Cell(
                id=f"{prompt}-{i}",
                run_id="r",
                index=i,
                model="openai:m",
                prompt_version=prompt,
                prompt_hash="p",
                scenario_id=f"s{i}",
                scenario_hash="s",
                rubric_version="tip-v1",
                rubric_hash="r",
                params={},
                identity="x",
                scenario_vars={},
                steps=["output"],
                status="completed",
            )
            cid = len(candidates) + 1
            candidates.append(
                Candidate(
                    id=cid,
                    run_id="r",
                    cell_id=cell.id,
                    index=0,
                    seed=0,
                    messages=[],
                    text="t",
                    output_hash="h",
                    latency_s=1.0,
                    completion_tokens=10,
                )
            )
            scores.append(
                Score(
                    run_id="r",
                    cell_id=cell.id,
                    candidate_id=cid,
                    name="auto_composite",
                    value=value,
                    version="t",
                )
            )
            cells.append(cell)
    rubric = load_suite(TIPS).rubric
    return build_leaderboard(rubric, cells, candidates, scores, list(judgements), seed=3)


def test_leaderboard_intervals_and_ties() -> None:
    board = board_for(
        {
            "best": [1.9, 2.0, 1.8, 2.0, 1.9, 2.0],
            "close": [2.0, 1.9, 1.8, 1.9, 2.0, 1.9],
            "poor": [0.1, 0.0, 0.2, -0.1, 0.0, 0.1],
        }
    )
    rows = {r.prompt: r for r in board.rows}
    assert board.metric == "auto_composite"
    assert [r.prompt for r in board.rows][2] == "poor"
    assert rows["close"].tied_with_leader or rows["best"].tied_with_leader
    assert not rows["poor"].tied_with_leader
    for row in board.rows:
        assert row.ci_low <= row.mean <= row.ci_high


def test_leaderboard_reports_agreement_per_criterion() -> None:
    judgements = [
        Judgement(
            run_id="r",
            candidate_id=c,
            judge=j,
            rubric_version="tip-v1",
            rubric_hash="r",
            scores={"relevance": v, "tone": 4},
        )
        for c, j, v in [(1, "ann", 4), (1, "bob", 4), (2, "ann", 2), (2, "bob", 3), (3, "ann", 5)]
    ]
    board = board_for({"a": [1.0, 2.0, 0.5]}, judgements)
    assert board.agreement["relevance"] == pytest.approx(
        krippendorff_alpha(np.array([[4, 2, 5], [4, 3, np.nan]]))
    )
    assert board.agreement["tone"] == 1.0
    assert board.agreement["actionability"] is None
    assert board.rows[0].judge_coverage == 1.0


def rid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def pair_of_runs(base: list[dict], now: list[dict]) -> tuple[str, str]:
    experiment = rid("exp")
    baseline = make_run(rid("base"), base, age_s=60, experiment=experiment)
    return baseline, make_run(rid("run"), now, experiment=experiment)


def cells(values: list[float], **extra) -> list[dict]:
    return [
        {"scenario": f"s{i}", "scores": {"auto_composite": [v, v], "schema_validity": [1, 1]}}
        | extra
        for i, v in enumerate(values)
    ]


@pytest.mark.db
def test_improvement_is_acceptable() -> None:
    base, run = pair_of_runs(cells([1.0, 1.0, 1.0]), cells([1.5, 1.2, 1.0]))
    report = evaluate(run, "latest")
    assert report.baseline == base and report.is_acceptable
    assert report.aggregate_score == pytest.approx(0.0)  # the unchanged pair is the minimum
    assert (report.summary.improved, report.summary.unchanged) == (2, 1)
    assert report.pairs[0].score == pytest.approx(0.5)


@pytest.mark.db
def test_regression_is_not_acceptable_unless_within_tolerance() -> None:
    base, run = pair_of_runs(cells([2.0, 2.0, 2.0]), cells([1.0, 1.2, 1.1]))
    report = evaluate(run, base)
    assert not report.is_acceptable and report.summary.regressed == 3
    assert report.summary.ci_high < 0
    assert evaluate(run, base, tolerance=1.5).is_acceptable


@pytest.mark.db
def test_a_broken_check_vetoes_the_change() -> None:
    now = cells([2.0, 2.0])
    now[1]["scores"]["schema_validity"] = [1, 0]
    base, run = pair_of_runs(cells([1.0, 1.0]), now)
    report = evaluate(run, base)
    broken = [p for p in report.pairs if p.broken]
    assert [p.broken_checks for p in broken] == [["schema_validity"]]
    assert broken[0].score == 0.0 and report.aggregate_score == 0.0
    assert not report.is_acceptable


@pytest.mark.db
def test_unknown_quality_gives_no_aggregate() -> None:
    now = cells([1.0])
    now[0]["scores"] = {"overlong": [0, 0]}  # neither a composite nor an objective check
    base, run = pair_of_runs(cells([1.0]), now)
    report = evaluate(run, base)
    assert report.pairs[0].score is None and report.aggregate_score is None
    assert not report.is_acceptable and report.summary.unknown == 1


@pytest.mark.db
def test_changed_hashes_are_listed_not_compared() -> None:
    now = cells([1.0, 1.0, 1.0])
    now[0]["scenario_hash"] = "other"
    now[1]["prompt_hash"] = "other"
    base, run = pair_of_runs(cells([1.0, 1.0, 1.0]), now)
    report = evaluate(run, base)
    reasons = {nc.name: nc.reasons for nc in report.not_comparable}
    assert reasons["openai:m | v1 | s0"] == ["scenario data changed"]
    assert reasons["openai:m | v1 | s1"] == ["prompt text or schema changed"]
    assert len(report.pairs) == 1
    assert len(evaluate(run, base, prompt_change=True).pairs) == 2


@pytest.mark.db
def test_no_usable_baseline_is_an_error() -> None:
    base, run = pair_of_runs(cells([1.0]), cells([1.0], scenario_hash="new"))
    with pytest.raises(BenchlibError, match="no usable baseline"):
        evaluate(run, base)
    lonely = make_run(rid("lonely"), cells([1.0]), experiment=rid("exp"))
    with pytest.raises(BenchlibError, match="no completed run of experiment"):
        evaluate(lonely, "latest")


@pytest.mark.db
def test_report_json_follows_the_published_schema() -> None:
    now = cells([1.5, 2.0])
    now[1]["scores"] = {"overlong": [0, 0]}
    base, run = pair_of_runs(cells([1.0, 2.0]), now)
    data = json.loads(evaluate(run, base).model_dump_json())
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema == EvalReport.model_json_schema()
    jsonschema.validate(data, schema)
    assert data["pairs"][1]["quality_delta"] is None and data["aggregate_score"] is None


@pytest.mark.db
def test_compare_exit_codes_gate_a_ci_job(tmp_path: Path) -> None:
    good_base, good = pair_of_runs(cells([1.0, 1.0]), cells([1.2, 1.1]))
    _, bad = pair_of_runs(cells([2.0, 2.0]), cells([0.5, 0.4]))
    out = tmp_path / "eval.json"
    ok = benchlib("compare", good, "--baseline", good_base, "--eval-report", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "ACCEPTABLE" in ok.stdout and json.loads(out.read_text())["is_acceptable"]
    worse = benchlib("compare", bad, "--baseline", "latest")
    assert worse.returncode == 1 and "NOT ACCEPTABLE" in worse.stdout
    assert "2 regressed" in worse.stdout
    missing = tmp_path / "none.json"
    bad_input = benchlib(
        "compare", good, "--baseline", "no-such-run", "--eval-report", str(missing)
    )
    assert bad_input.returncode == 2 and "no run 'no-such-run'" in bad_input.stderr
    assert not missing.exists()


@pytest.fixture(scope="module")
def compared_runs(prefect_api: str, small_config: dict) -> tuple[str, str]:
    values = small_config | {
        "models": ["local:smollm2-135m"],
        "experiment": rid("flow-exp"),
        "prompts": ["v2-mentor"],
    }
    first = benchmark(**build_config(values).model_dump())["run_id"]
    values |= {"baseline": "latest"}
    second = benchmark(**build_config(values).model_dump())["run_id"]
    return first, second


def test_the_flow_publishes_the_verdict_against_latest(compared_runs) -> None:
    first, second = compared_runs
    run = runs.get_run(second)
    assert run.eval_report["baseline"] == first
    assert run.eval_report["summary"]["pairs"] == 2
    # Same seed, same model, temperature fixed: the outputs are reproduced exactly.
    assert not any(p["output_changed"] for p in run.eval_report["pairs"])
    assert run.eval_report["is_acceptable"]
    client = MlflowClient(tracking_uri(""))
    artifacts = {a.path for a in client.list_artifacts(run.mlflow_run_id)}
    assert {"leaderboard.json", "report.html", "eval_report.json"} <= artifacts
    assert runs.get_run(first).eval_report is None


@needs_chromium
def test_html_report_renders_table_and_charts_in_chromium(compared_runs, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    result = benchlib("report", compared_runs[1], "--html", str(page_file))
    assert result.returncode == 0, result.stderr
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(page_file.as_uri())
        assert page.locator("#leaderboard tr").count() == 2  # header + one (model, prompt)
        assert "v2-mentor" in page.locator("#leaderboard").inner_text()
        assert page.locator("#heatmap rect.cell").count() == 1
        assert page.locator("#bars rect.bar").count() == 1
        assert page.locator("#bars rect.bar").bounding_box()["width"] > 0
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 5_000
