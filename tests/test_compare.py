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

from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.evaluation.leaderboard import Leaderboard, build_leaderboard
from benchlib.evaluation.stats import bootstrap_mean, intervals, krippendorff_alpha
from benchlib.evaluation.verdict import (
    METHOD,
    MIN_SCENARIOS,
    EvalReport,
    PairResult,
    delta_interval,
    evaluate,
)
from benchlib.settings import tracking_uri
from benchlib.spec.suite import load_suite
from benchlib.store import runs
from benchlib.store.records import Candidate, Cell, Judgement, Score
from flows.benchmark import benchmark
from tests.conftest import ROOT, TIPS
from tests.support.browser import launch, needs_chromium
from tests.support.cli import benchlib
from tests.support.crafted import make_run

SCHEMA_FILE = ROOT / "benchlib" / "schemas" / "eval-report.schema.json"
COVERAGE_FILE = ROOT / "benchmarks" / "results" / "verdict_coverage.json"


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


@pytest.mark.parametrize("method", ["percentile", "BCa"])
def test_verdict_intervals_agree_with_scipy(method: str) -> None:
    data = np.array([3.1, 2.5, 4.0, 3.3, 1.9, 2.8, 3.6, 4.2, 2.2, 3.0, 3.9, 2.6, 0.5])
    _, low, high = intervals(data, method.lower(), np.random.default_rng(1), 20_000)
    theirs = scipy.stats.bootstrap(
        (data,), np.mean, n_resamples=20_000, method=method, random_state=5
    ).confidence_interval
    assert (low[0], high[0]) == pytest.approx((theirs.low, theirs.high), abs=0.04)
    _, t_low, t_high = intervals(data, "t", np.random.default_rng(1))
    t = scipy.stats.t.interval(0.95, data.size - 1, data.mean(), scipy.stats.sem(data))
    assert (t_low[0], t_high[0]) == pytest.approx(t)
    assert np.isnan(intervals(data[:1], "t", np.random.default_rng(1))[1][0])  # no spread known


def clustered_pairs(rng: np.random.Generator, n_scenarios: int, truth: float) -> list[PairResult]:
    """3 prompt versions × n scenarios; each scenario's effect is shared by its three pairs."""
    effect = rng.normal(0.0, 0.3, n_scenarios)
    return [
        PairResult(
            name=f"m | {prompt} | s{s}",
            model="m",
            prompt=prompt,
            scenario=f"s{s}",
            metric="auto_composite",
            quality_delta=truth + effect[s] + rng.normal(0.0, 0.15),
            output_changed=True,
            broken=False,
            broken_checks=[],
            latency_delta=None,
            score=0.0,
        )
        for prompt in ("a", "b", "c")
        for s in range(n_scenarios)
    ]


def test_the_verdict_interval_covers_the_truth_with_correlated_pairs() -> None:
    # Pairs bootstrapped as independent covered the truth ~70% of the time on this grid.
    rng = np.random.default_rng(2)
    hits = 0
    for seed in range(300):
        report = delta_interval(clustered_pairs(rng, 8, -0.2), seed)
        hits += report.ci_low <= -0.2 <= report.ci_high
    assert hits / 300 >= 0.90


def test_the_chosen_method_and_minimum_are_the_measured_ones() -> None:
    measured = json.loads(COVERAGE_FILE.read_text())
    assert (measured["chosen"], measured["min_scenarios"]) == (METHOD, MIN_SCENARIOS)
    chosen = [r for r in measured["rows"] if r["method"] == measured["chosen_label"]]
    assert all(0.93 <= r["coverage"] <= 0.97 for r in chosen if r["scenarios"] >= MIN_SCENARIOS)


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


def board_for(
    groups: dict[str, list[float]], judgements=(), cached: list[bool] = ()
) -> Leaderboard:
    """Candidates of prompt versions over scenarios s0..sN with the given auto_composite; the
    i-th of each group `cached[i]` (carrying the first run's 91.8 s)."""
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
                    latency_s=91.8 if i < len(cached) and cached[i] else 1.0,
                    completion_tokens=10,
                    cached=i < len(cached) and cached[i],
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


def grid(deltas: dict[str, list[float]], base: float = 1.0) -> tuple[list[dict], list[dict]]:
    """Baseline and run cells of prompt versions over scenarios s0..sN."""
    before, after = [], []
    for prompt, values in deltas.items():
        for i, delta in enumerate(values):
            cell = {"scenario": f"s{i}", "prompt": prompt}
            before.append(cell | {"scores": {"auto_composite": [base], "schema_validity": [1]}})
            now = {"auto_composite": [base + delta], "schema_validity": [1]}
            after.append(cell | {"scores": now})
    return before, after


@pytest.mark.db
def test_the_verdict_interval_resamples_scenarios_per_group_and_overall() -> None:
    # Three prompt versions move together on each scenario: 24 pairs, 8 independent facts.
    shared = [0.4, -0.3, 0.1, 0.5, -0.2, 0.3, 0.0, 0.2]
    deltas = {p: [d + off for d in shared] for p, off in (("a", -0.05), ("b", 0.0), ("c", 0.05))}
    base, run = pair_of_runs(*grid(deltas))
    report = evaluate(run, base)
    s = report.summary
    assert (s.scenarios, s.interval_method, s.interval_reliable) == (8, METHOD, True)
    # The interval is the one of the 8 scenario means (the run's seed is 7), and wider than the
    # one that treated the 24 pairs as independent.
    _, low, high = intervals(np.array(shared), METHOD, np.random.default_rng(7))
    assert (s.ci_low, s.ci_high) == pytest.approx((low[0], high[0]))
    pairs = bootstrap_mean(np.concatenate(list(deltas.values())), seed=7)
    assert s.ci_high - s.ci_low > 1.5 * (pairs.high - pairs.low)
    assert [(g.prompt, g.scenarios) for g in report.groups] == [("a", 8), ("b", 8), ("c", 8)]
    _, low, high = intervals(np.array(deltas["a"]), METHOD, np.random.default_rng(7))
    assert (report.groups[0].ci_low, report.groups[0].ci_high) == pytest.approx((low[0], high[0]))


@pytest.mark.db
def test_few_scenarios_make_the_interval_unreliable_in_report_and_terminal(
    tmp_path: Path,
) -> None:
    base, run = pair_of_runs(*grid({"a": [0.1, 0.2, 0.0], "b": [0.1, 0.0, 0.1]}))
    report = evaluate(run, base)
    assert report.summary.scenarios == 3 < MIN_SCENARIOS
    assert not report.summary.interval_reliable and not report.groups[0].reliable
    assert report.summary.interval_method == "t"  # the studentized bootstrap degenerates here
    out = tmp_path / "eval.json"
    result = benchlib("compare", run, "--baseline", base, "--eval-report", str(out))
    assert result.returncode == 0, result.stderr
    assert "interval unreliable: 3 scenario(s)" in " ".join(result.stdout.split())
    assert json.loads(out.read_text())["summary"]["interval_reliable"] is False
    one_base, one = pair_of_runs(*grid({"a": [-0.5]}))
    single = evaluate(one, one_base)
    assert single.summary.ci_low is None and single.summary.mean_quality_delta == -0.5
    assert not single.is_acceptable  # the mean alone is below the tolerance


@pytest.mark.db
def test_an_uncompared_cell_of_the_run_blocks_the_verdict(tmp_path: Path) -> None:
    now = cells([1.2, 1.2, 1.2])
    now[1]["prompt_hash"] = "edited"
    base, run = pair_of_runs(cells([1.0, 1.0, 1.0]), now)
    report = evaluate(run, base)
    assert not report.is_acceptable and report.summary.uncompared == 1
    assert report.not_comparable[0].flag == "--allow-prompt-change"
    assert "--allow-prompt-change" in report.reasons[0]
    assert evaluate(run, base, prompt_change=True).is_acceptable
    partial = evaluate(run, base, allow_uncompared=True)
    assert partial.is_acceptable and partial.uncompared_allowed and len(partial.pairs) == 2

    refused = benchlib("compare", run, "--baseline", base)
    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1 and "NOT ACCEPTABLE" in said
    assert "1 differ only in prompt text: --allow-prompt-change pairs them" in said
    assert "openai:m | v1 | s1: prompt text or schema changed" in said
    out = tmp_path / "eval.json"
    flagged = benchlib(
        "compare", run, "--baseline", base, "--allow-uncompared", "--eval-report", str(out)
    )
    assert flagged.returncode == 0, flagged.stdout
    assert "1 cell(s) of the run accepted uncompared" in " ".join(flagged.stdout.split())
    assert json.loads(out.read_text())["uncompared_allowed"] is True


@pytest.mark.db
def test_a_cell_only_in_the_run_needs_allow_uncompared_not_a_prompt_change() -> None:
    now = cells([1.0, 1.0, 1.0])
    now[1]["scenario_hash"] = "new data"
    base, run = pair_of_runs(cells([1.0, 1.0]), now)
    report = evaluate(run, base, prompt_change=True)
    assert not report.is_acceptable and report.summary.uncompared == 2
    assert {nc.flag for nc in report.not_comparable} == {"--allow-uncompared"}
    assert "--allow-prompt-change" not in report.reasons[0]
    assert evaluate(run, base, allow_uncompared=True).is_acceptable
    # Cells the run dropped are listed, but the change was measured wherever the run ran.
    _, shorter = pair_of_runs(cells([1.0, 1.0]), cells([1.0]))
    dropped = evaluate(shorter, "latest")
    assert dropped.is_acceptable and dropped.not_comparable[0].in_run is False


@pytest.mark.db
def test_require_improvement_is_the_optimisation_loops_rule() -> None:
    base, run = pair_of_runs(cells([1.0, 1.0, 1.0]), cells([1.5, 1.2, 1.0]))
    assert evaluate(run, base).is_acceptable  # no regression: the default
    strict = evaluate(run, base, rule="improvement")
    assert not strict.is_acceptable and strict.rule == "improvement"
    assert "not every pair improved" in strict.reasons[0]
    result = benchlib("compare", run, "--baseline", base, "--require-improvement")
    assert result.returncode == 1 and "every pair improved" in result.stdout
    better_base, better = pair_of_runs(cells([1.0, 1.0]), cells([1.5, 1.2]))
    assert evaluate(better, better_base, rule="improvement").is_acceptable
    passed = benchlib("compare", better, "--baseline", "latest", "--require-improvement")
    assert passed.returncode == 0, passed.stdout


@pytest.mark.db
def test_cached_outputs_have_no_latency_delta_and_are_counted() -> None:
    now = cells([1.0, 1.0, 1.0], latency=0.5)
    now[0] |= {"cached": True, "latency": 91.8}  # the first run's latency, carried by the cache
    base, run = pair_of_runs(cells([1.0, 1.0, 1.0], latency=2.0), now)
    report = evaluate(run, base)
    assert [p.latency_delta for p in report.pairs] == [None, -1.5, -1.5]
    assert (report.summary.outputs, report.summary.cached_outputs) == (6, 2)
    assert report.summary.baseline_cached_outputs == 0
    result = benchlib("compare", run, "--baseline", base)
    said = " ".join(result.stdout.split())
    assert "2 of 6 output(s) of the run and 0 of the baseline's came from the response" in said


def test_leaderboard_latency_and_speed_come_from_live_calls_only() -> None:
    board = board_for({"a": [1.0, 1.0]})
    assert board.rows[0].cached_outputs == 0
    cached = board_for({"a": [1.0, 1.0]}, cached=[True, False])
    row = cached.rows[0]
    assert row.cached_outputs == 1
    assert (row.latency_p50_s, row.tokens_per_s) == (1.0, 10.0)


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
    """Two runs of one grid: the first calls the model (and refreshes the response cache), the
    second is answered by the cache."""
    values = small_config | {
        "models": ["local:smollm2-135m"],
        "experiment": rid("flow-exp"),
        "prompts": ["v2-mentor"],
        "no_cache": False,
    }
    first = benchmark(**build_config(values | {"refresh": True}).model_dump())["run_id"]
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


def test_a_rerun_from_the_cache_reports_no_latency_of_its_own(compared_runs) -> None:
    first, second = compared_runs
    summary = runs.get_run(second).eval_report["summary"]
    assert summary["cached_outputs"] == summary["outputs"] == 4
    assert summary["baseline_cached_outputs"] == 0
    assert all(p["latency_delta"] is None for p in runs.get_run(second).eval_report["pairs"])
    live, cached = (runs.get_run(r).leaderboard["rows"][0] for r in (first, second))
    assert live["latency_p50_s"] > 0 and live["tokens_per_s"] > 0 and live["cached_outputs"] == 0
    assert cached["latency_p50_s"] is None and cached["tokens_per_s"] is None
    assert cached["cached_outputs"] == 4


def test_the_compare_subflow_applies_the_verdict_flags(compared_runs, small_config) -> None:
    first, _ = compared_runs
    values = small_config | {
        "models": ["local:smollm2-135m"],
        "experiment": runs.get_run(first).experiment,
        "prompts": ["v2-mentor"],
        "no_cache": False,
        "n_scenarios": 3,  # one scenario more than the baseline: a cell left uncompared
        "baseline": first,
        "require_improvement": True,
    }
    strict = runs.get_run(benchmark(**build_config(values).model_dump())["run_id"]).eval_report
    assert strict["rule"] == "improvement" and not strict["is_acceptable"]
    assert strict["summary"]["uncompared"] == 1 and not strict["uncompared_allowed"]
    assert "--allow-uncompared" in strict["reasons"][0]
    assert "not every pair improved" in strict["reasons"][1]
    values |= {"require_improvement": False, "allow_uncompared": True}
    partial = runs.get_run(benchmark(**build_config(values).model_dump())["run_id"]).eval_report
    assert partial["is_acceptable"] and partial["uncompared_allowed"]


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
