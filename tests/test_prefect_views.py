"""What the Prefect UI shows of a run, rendered by a real CommonMark renderer: outputs and
scenario values stay text whatever Markdown or HTML they hold."""

from datetime import UTC, datetime

from markdown_it import MarkdownIt

from benchlib.evaluation import judging
from benchlib.evaluation.leaderboard import Leaderboard, Row
from benchlib.pipeline import prefect_views
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Cell
from tests.support.crafted import make_run

HOSTILE = "# Heading\n**bold** <script>alert(1)</script>\n```js\nx = 1\n```\n> quoted\n| a | b |"


def test_the_resume_form_shows_outputs_verbatim_and_leads_with_the_judge_page(
    monkeypatch,
) -> None:
    monkeypatch.setenv("BENCHLIB_API_URL", "https://bench.example/")
    run_id = make_run("views-1", [{"scenario": "a", "text": HOSTILE}], experiment="views")
    with session() as s:
        cell = s.get(Cell, f"{run_id}-0000")
        cell.scenario_vars = {"persona": "a *nurse* | night <b>shift</b>", "tasks": "one\ntwo"}
        s.add(cell)
    run = runs.get_run(run_id)
    counted = datetime(2026, 12, 4, 9, 30, 5, tzinfo=UTC)
    text = prefect_views.form_description(run, counted)
    assert text.startswith(
        f"## Judge run `{run_id}` on the judge page: https://bench.example/runs/{run_id}/judge"
    )
    assert "1 of 1 outputs were unjudged at 2026-12-04 09:30:05 UTC" in text

    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script>" not in html and "<strong>bold" not in html and "<h1>" not in html
    assert "<b>shift</b>" not in html and "<em>nurse</em>" not in html
    item = judging.judge_items(run)[0].item_id
    body = html.split(f"<code>{item}</code>")[1]
    assert '<pre><code class="language-text"># Heading\n**bold** &lt;script&gt;' in body
    assert "```js\nx = 1\n```\n&gt; quoted\n| a | b |\n</code></pre>" in body  # whole, verbatim
    assert "<td>a *nurse* | night &lt;b&gt;shift&lt;/b&gt;</td>" in body
    assert "<td>one two</td>" in body


def test_the_fence_outgrows_any_backtick_run() -> None:
    for text in ("plain", "``` inside", "````` five", "`x` and ```` four"):
        fenced = prefect_views.fenced(text)
        html = MarkdownIt("commonmark").render(fenced)
        assert html.count("<pre>") == 1
        assert text.replace("`", "") in html.replace("`", "")


def test_the_leaderboard_artifact_names_columns_as_the_config_does() -> None:
    row = {
        "rank": 1,
        "tied_with_leader": False,
        "partial_above_full": False,
        "model": "local:m",
        "prompt": "v1",
        "ranked_steps": ["output"],
        "n_scenarios": 4,
        "n_cells": 4,
        "n_outputs": 12,
        "n_scored": 12,
        "n_judged": 6,
        "coverage": 1.0,
        "judge_coverage": 0.5,
        "metric": "composite",
        "mean": 3.2,
        "ci_low": 2.9,
        "ci_high": 3.5,
        "scenarios_with_metric": 4,
        "interval_note": "",
        "composite": 3.2,
        "auto_composite": 1.0,
        "criteria": {"tone": 4.0},
        "scores": {"json_valid": 1.0},
        "not_applicable": {},
        "steps": [],
        "failed_cells": 0,
        "failure_rate": 0.0,
        "latency_p50_s": 0.4,
        "latency_p95_s": 0.5,
        "tokens_per_s": 80.0,
    }
    board = Leaderboard(
        metric="composite",
        formula="tone",
        combination="",
        rank_on="final",
        ranked_on="the final step",
        confidence=0.95,
        resamples=1000,
        seed=0,
        min_scenarios=2,
        rows=[Row.model_validate(row)],
        agreement={},
    )
    (row,) = prefect_views.artifact_rows(board, n_candidates=3)
    assert row["n_candidates"] == 3 and row["outputs"] == 12 and row["coverage"] == "100% (12/12)"
    assert row["composite"] == 3.2 and row["composite_ci_low"] == 2.9
    assert row["tone"] == 4.0 and row["json_valid"] == 1.0
