"""What a leaderboard row is (rank_on), and evidence that never looks surer than it is: rows
ranked on the answer of a chain, coverage beside the score, intervals only over enough
scenarios, thin evidence marked; the typed model and its published JSON Schema.

Runs are written into the real database (tests/support/crafted.py) with exact scores, then
read back through the same functions the CLI, the API and the flow use."""

import json
import uuid
from pathlib import Path

import jsonschema
import pytest

from benchlib.errors import BenchlibError
from benchlib.evaluation import judging, reports
from benchlib.evaluation.leaderboard import Leaderboard, notes, table_cells
from benchlib.evaluation.verdict import evaluate
from benchlib.spec.suite import load_suite
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Candidate
from tests.conftest import ROOT
from tests.support.browser import launch, needs_chromium
from tests.support.crafted import make_run

SCHEMA_FILE = ROOT / "benchlib" / "schemas" / "leaderboard.schema.json"
NOT_RUN = "step 'reply' not run: step 'triage' failed (timeout)"


def rid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def chain(prompt: str, triage: list[float], reply: list[float], **extra) -> list[dict]:
    """Customer-support chains, one cell per scenario: a triage step, then the reply."""
    return [
        {
            "scenario": f"s{i}",
            "prompt": prompt,
            "steps": {"triage": {"auto_composite": [t]}, "reply": {"auto_composite": [r]}},
        }
        | extra
        for i, (t, r) in enumerate(zip(triage, reply, strict=True))
    ]


def single(prompt: str, values: list[list[float | None]], name="auto_composite") -> list[dict]:
    """One-step cells, one per scenario, with the values of its attempts."""
    return [
        {"scenario": f"s{i}", "prompt": prompt, "scores": {name: v}} for i, v in enumerate(values)
    ]


def board_of(cells: list[dict], rank_on: str = "final") -> Leaderboard:
    run_id = make_run(rid("lb"), cells, experiment=rid("exp"), rank_on=rank_on)
    return reports.compute_leaderboard(runs.get_run(run_id))


def by_prompt(board: Leaderboard) -> dict:
    return {row.prompt: row for row in board.rows}


@pytest.mark.db
def test_a_chain_is_ranked_on_its_final_answer_with_steps_as_columns() -> None:
    # The trial: the triage step scores high, the replies low.
    board = board_of(
        chain("mixed", [1.8, 1.9, 1.8], [0.5, 0.6, 0.6]) + single("plain", [[1.0]] * 3)
    )
    mixed = by_prompt(board)["mixed"]
    assert [row.prompt for row in board.rows] == ["plain", "mixed"]
    assert mixed.mean == pytest.approx(1.7 / 3) and mixed.ranked_steps == ["reply"]
    assert (mixed.n_cells, mixed.n_outputs) == (3, 3)  # outputs of the reply, not of both steps
    assert [(s.step, s.ranked, round(s.mean, 2)) for s in mixed.steps] == [
        ("triage", False, 1.83),
        ("reply", True, 0.57),
    ]
    header, body = table_cells(board, wide=True)
    columns = dict(zip(header, body[1], strict=True))
    assert (columns["step triage"], columns["step reply"]) == ("1.83", "0.57*")
    assert board.ranked_on == "the final step of each chain"


@pytest.mark.db
def test_rank_on_a_named_step_or_all_steps() -> None:
    cells = chain("a", [1.8, 1.9, 1.8], [0.5, 0.6, 0.6]) + chain("b", [0.2, 0.1, 0.3], [1.0] * 3)
    assert [r.prompt for r in board_of(cells).rows] == ["b", "a"]
    on_triage = board_of(cells, rank_on="triage")
    assert [r.prompt for r in on_triage.rows] == ["a", "b"]
    assert by_prompt(on_triage)["a"].mean == pytest.approx(5.5 / 3)
    on_all = by_prompt(board_of(cells, rank_on="all"))["a"]
    assert on_all.mean == pytest.approx((5.5 + 1.7) / 6) and on_all.n_outputs == 6


@pytest.mark.db
def test_judges_see_and_coverage_counts_the_ranked_outputs() -> None:
    run = runs.get_run(make_run(rid("judged"), chain("c", [1.0] * 3, [1.0] * 3)))
    items = judging.judge_items(run)
    with session() as s:
        steps = {s.get(Candidate, item.candidate_id).step for item in items}
    assert len(items) == 3 and steps == {"reply"}
    rubric = judging.rubric_of(run)
    levels = {c.name: c.levels[-1].score for c in rubric.criteria}
    scored = [judging.Scored(item_id=i.item_id, scores=levels) for i in items[:2]]
    judging.apply_judgements(run.id, "ann", scored, "test")
    [row] = reports.compute_leaderboard(run).rows
    assert (row.n_judged, row.n_outputs) == (2, 3) and row.judge_coverage == pytest.approx(2 / 3)


@pytest.mark.db
def test_a_step_that_did_not_run_is_shown_with_its_reason() -> None:
    cells = chain("c", [1.0, 1.0, 0.0], [1.0, 1.0, 0.0])
    cells[2]["errors"] = {"triage": "timeout", "reply": NOT_RUN}
    board = board_of(cells)
    reply = by_prompt(board)["c"].steps[1]
    assert (reply.outputs, reply.not_run, reply.reasons) == (3, 1, [NOT_RUN])
    assert f"c: step reply: 1 of 3 not run ({NOT_RUN})" in "\n".join(notes(board))
    header, body = table_cells(board, wide=True)
    assert dict(zip(header, body[0], strict=True))["step reply"] == "0.67 (1 not run)*"


@pytest.mark.db
def test_one_scenario_gives_no_interval_and_says_why() -> None:
    cells = single("thin", [[1.0, 1.4]]) + single("broad", [[1.0], [1.2], [0.9]])
    run = runs.get_run(make_run(rid("thin"), cells))
    board = reports.compute_leaderboard(run)
    thin = by_prompt(board)["thin"]
    assert thin.mean == pytest.approx(1.2) and (thin.ci_low, thin.ci_high) == (None, None)
    assert thin.interval_note == "1 scenario carries auto_composite: an interval needs at least 2"
    header, body = table_cells(board)
    assert dict(zip(header, body[0], strict=True))["95% CI"] == "n/a"
    broad = by_prompt(board)["broad"]
    assert broad.ci_low < broad.mean < broad.ci_high and broad.interval_note == ""
    html = reports.render_html(run, board)
    assert "thin: interval n/a: 1 scenario carries auto_composite" in html


@pytest.mark.db
def test_partial_coverage_above_a_fully_judged_row_is_marked() -> None:
    # Composite 14 on one judged output of two, above a row whose every output is judged.
    cells = single("half", [[14.0, None], [14.0, None]], "composite")
    cells += single("full", [[10.0, 10.0], [10.0, 10.0]], "composite")
    board = board_of(cells)
    half, full = board.rows
    assert (half.prompt, half.coverage, half.n_scored, half.n_outputs) == ("half", 0.5, 2, 4)
    assert half.partial_above_full and not full.partial_above_full and full.coverage == 1.0
    header, body = table_cells(board)
    assert dict(zip(header, body[0], strict=True)) == {
        "#": "1†",
        "model": "openai:m",
        "prompt": "half",
        "coverage": "50% (2/4)",
        "composite": "14.00",
        "95% CI": "14.00…14.00",
        "failed": "0/2",
        "p50 s": "1.00",
    }
    text = "\n".join(notes(board))
    assert "† openai:m · half: ranked above a fully covered row on 2 of its 4 outputs" in text
    # How the human and the automatic parts combine when only some outputs are judged.
    assert "mean over its judged outputs alone" in board.combination
    assert board.formula == "1·relevance + 1·actionability + 1·tone + 2·format_ok + -1·overlong"


@pytest.mark.db
def test_stability_is_not_applicable_to_a_single_attempt() -> None:
    once = [{"scenario": f"s{i}", "prompt": "once", "scores": {"stability": [1.0]}} for i in (0, 1)]
    twice = [
        {"scenario": f"s{i}", "prompt": "twice", "scores": {"stability": [0.5, 0.7]}}
        for i in (0, 1)
    ]
    board = board_of(once + twice)
    rows = by_prompt(board)
    assert "stability" not in rows["once"].scores and "stability" in rows["once"].not_applicable
    assert rows["twice"].scores["stability"] == pytest.approx(0.6)
    header, body = table_cells(board, wide=True)
    values = {line[2]: dict(zip(header, line, strict=True))["stability"] for line in body}
    assert values == {"once": "n/a", "twice": "0.60"}


@pytest.mark.db
def test_the_verdict_compares_the_answers_of_chains() -> None:
    experiment = rid("exp")
    base = make_run(rid("base"), chain("c", [2.0] * 3, [0.5] * 3), 60, experiment)
    now = make_run(rid("now"), chain("c", [0.5] * 3, [1.0] * 3), 0, experiment)
    report = evaluate(now, base)
    assert report.summary.improved == 3 and report.is_acceptable
    assert report.summary.mean_quality_delta == pytest.approx(0.5)


@pytest.mark.db
def test_leaderboard_json_follows_the_published_schema() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == Leaderboard.model_json_schema()
    run_id = make_run(rid("schema"), chain("c", [1.0, 0.5], [0.5, 1.0]) + single("s", [[1.0]]))
    board = reports.publish_leaderboard(run_id)
    stored = runs.get_run(run_id).leaderboard
    jsonschema.validate(stored, json.loads(SCHEMA_FILE.read_text()))
    assert Leaderboard.model_validate(stored) == board
    assert stored["rows"][0]["coverage"] == 1.0


def test_rank_on_must_name_a_step_of_every_version(suite_copy: Path) -> None:
    assert load_suite(suite_copy).spec.rank_on == "final"
    text = (suite_copy / "suite.yaml").read_text()
    (suite_copy / "suite.yaml").write_text(text + "rank_on: outptu\n")
    line = len(text.splitlines()) + 1
    with pytest.raises(BenchlibError) as error:
        load_suite(suite_copy)
    message = str(error.value)
    assert f"suite.yaml:{line}: rank_on: 'outptu' is not a step of prompt version(s)" in message
    assert "did you mean 'output'?" in message
    (suite_copy / "suite.yaml").write_text(text + "rank_on: all\n")
    assert load_suite(suite_copy).spec.rank_on == "all"


@needs_chromium
@pytest.mark.db
def test_html_report_fits_1280_px_with_notes_and_an_axis(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    scores = {"auto_composite": [1.0, 0.8], "stability": [0.9, 0.9]}
    names = ["schema_validity", "completeness", "policy_compliance", "format_ok", "overlong"]
    scores |= {name: [1.0, 1.0] for name in names}
    cells = [
        {
            "scenario": f"s{i}",
            "prompt": f"prompt-version-{p}",
            "steps": {"triage": scores, "reply": scores},
        }
        for p in range(3)
        for i in range(4)
    ]
    run = runs.get_run(make_run(rid("html"), cells))
    page_file = tmp_path / "report.html"
    page_file.write_text(reports.render_html(run, reports.compute_leaderboard(run)))
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        assert not page.locator("#leaderboard-wide").is_visible()  # details on demand
        page.locator("#details summary").click()
        assert "step reply" in page.locator("#leaderboard-wide").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        assert len(page.locator("#bars text.tick").all()) == 5
        assert "coverage 100% (8/8)" in page.locator("#bars text.value").first.text_content()
        assert "Ranked on the final step of each chain" in page.locator("#notes").inner_text()
        # The per-cell view: every output of a row's cells, with its scores, on demand.
        assert page.locator("#cells details").count() == 3
        page.locator("#cells details summary").first.click()
        cell_view = page.locator("#cells details table").first.inner_text()
        assert "triage" in cell_view and "reply" in cell_view and "auto_composite 0.80" in cell_view
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        browser.close()
