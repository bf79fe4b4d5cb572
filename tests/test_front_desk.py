"""The third suite, tests/suites/front-desk, end to end on the embedded model: a hotel front desk
reads a guest's message (booking reference, name, intent), then replies. Its scorers are held to
what their names say on real outputs: `equals` is equality up to case and surrounding
whitespace with null only matching null, `contains` wants the guest's name as a word, each
policy measures its own step's field, and a failed check quotes the value that failed it."""

import re
from collections import defaultdict
from typing import Any

import pytest
from sqlmodel import select

from benchlib.config import build_config
from benchlib.errors import shown
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Candidate, Score
from flows.benchmark import benchmark
from tests.conftest import ROOT
from tests.support.cli import benchlib

FRONT_DESK = ROOT / "tests" / "suites" / "front-desk"


@pytest.fixture(scope="module")
def desk_runs(prefect_api: str, llm_url: str) -> tuple[str, str]:
    """A run of the suite and an unchanged rerun of it."""
    config = build_config(
        {
            "suite": str(FRONT_DESK),
            "models": ["openai:smollm2"],
            "openai_base_url": f"{llm_url}/v1",
            "n_candidates": 1,
            "temperature": 0.0,
            "max_tokens": 120,
            "judge": "skip",
        }
    )
    first = benchmark(**config.model_dump())["run_id"]
    return first, benchmark(**config.model_dump())["run_id"]


def scored(run_id: str) -> list[tuple[Candidate, dict[str, Any], dict[str, Score]]]:
    """Each output the run produced, its scenario's variables and its scores by name."""
    scenarios = {cell.id: cell.scenario_vars for cell in runs.run_cells(run_id)}
    with session() as s:
        rows = list(s.exec(select(Score).where(Score.run_id == run_id)))
    by_candidate: dict[int, dict[str, Score]] = defaultdict(dict)
    for row in rows:
        by_candidate[row.candidate_id][row.name] = row
    return [
        (c, scenarios[c.cell_id], by_candidate[c.id])
        for c in runs.run_candidates(run_id)
        if not c.error
    ]


def field(candidate: Candidate, name: str) -> Any:
    return candidate.parsed.get(name) if isinstance(candidate.parsed, dict) else None


def test_equals_holds_the_booking_reference_to_the_scenarios_and_null_to_null(
    desk_runs: tuple[str, str],
) -> None:
    outputs = scored(desk_runs[0])
    assert {c.step for c, _, _ in outputs} == {"read", "reply"}
    assert any(v["booking_ref"] is None for _, v, _ in outputs)  # the null reference ran
    for candidate, scenario, scores in outputs:
        got, expected = field(candidate, "booking_ref"), scenario["booking_ref"]
        if expected is None:
            ok = got is None
        else:
            ok = isinstance(got, str) and got.strip().casefold() == expected.casefold()
        explanation = scores["reference_consistency"].explanation
        check = f"booking_ref equals booking_ref {expected!r}"
        failed = explanation.startswith("failed:") and check + ": got" in explanation
        assert failed is not ok, (candidate.step, got, expected, explanation)
        if not ok:
            assert f"{check}: got {shown(got, 60)}" in explanation


def test_contains_wants_the_guest_by_name_in_the_reply_only(desk_runs: tuple[str, str]) -> None:
    replies = 0
    for candidate, scenario, scores in scored(desk_runs[0]):
        explanation = scores["reference_consistency"].explanation
        if candidate.step == "read":  # its schema has no `reply`: not held to it
            assert "reply contains" not in explanation
            continue
        replies += 1
        reply = field(candidate, "reply")
        named = isinstance(reply, str) and re.search(
            rf"(?<!\w){re.escape(scenario['guest'])}(?!\w)", reply, re.IGNORECASE
        )
        check = f"reply contains guest {scenario['guest']!r}"
        assert (f"{check}: got {shown(reply, 60)}" in explanation) is (not named), explanation
    assert replies  # a reply the tiny model could not reach (its reading failed) is not scored here


def test_each_policy_measures_its_own_step_field(desk_runs: tuple[str, str]) -> None:
    for candidate, _, scores in scored(desk_runs[0]):
        name, limit = ("guest", 4) if candidate.step == "read" else ("reply", 60)
        other = "reply" if name == "guest" else "guest"
        value = field(candidate, name)
        compliance = scores["policy_compliance"].explanation
        flag = scores["overlong"]
        assert f"{other}:" not in compliance and f"{other}:" not in flag.explanation
        if not isinstance(value, str):
            assert f"{name}: not in the output" in compliance
            continue
        words = len(value.split())
        assert f"{name}: {words} words (max {limit})" in flag.explanation
        assert flag.value == float(words > limit)
        assert words != len(candidate.text.split())  # the field, never the whole JSON text


def test_an_unchanged_rerun_is_acceptable(desk_runs: tuple[str, str]) -> None:
    first, second = desk_runs
    result = benchlib("compare", second, "--baseline", first)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rows_are_ranked_on_the_reply_with_the_reading_as_its_own_column(
    desk_runs: tuple[str, str],
) -> None:
    """rank_on defaults to the final step: the row counts one output per cell (not one per
    step) and its interval and coverage are the replies'; the reading stays visible."""
    from benchlib.evaluation.reports import current_leaderboard

    (row,) = current_leaderboard(runs.get_run(desk_runs[0])).rows
    cells = runs.run_cells(desk_runs[0])
    assert row.ranked_steps == ["reply"]
    assert row.n_outputs == len(cells) == 3
    steps = {step.step: step for step in row.steps}
    assert list(steps) == ["read", "reply"]
    assert steps["reply"].ranked and not steps["read"].ranked
    replies_not_run = sum(
        1 for c in runs.run_candidates(desk_runs[0]) if c.step == "reply" and c.error
    )
    assert steps["reply"].not_run == replies_not_run
    assert bool(steps["reply"].reasons) is bool(replies_not_run)


def test_an_edited_prompt_is_not_accepted_until_the_edit_is_named(
    desk_runs: tuple[str, str], tmp_path, llm_url: str
) -> None:
    """The change under test must be compared: with the reply prompt edited and no flag, no
    verdict is given (nothing comparable: exit 2) and it says which flag would pair the cells."""
    import json
    import shutil

    edited = tmp_path / "front-desk"
    shutil.copytree(FRONT_DESK, edited)
    version = edited / "versions" / "desk.yaml"
    version.write_text(version.read_text().replace("friendly hotel receptionist", "hotel clerk"))
    config = build_config(
        {
            "suite": str(edited),
            "models": ["openai:smollm2"],
            "openai_base_url": f"{llm_url}/v1",
            "n_candidates": 1,
            "temperature": 0.0,
            "max_tokens": 120,
            "judge": "skip",
        }
    )
    changed = benchmark(**config.model_dump())["run_id"]
    refused = benchlib("compare", changed, "--baseline", desk_runs[0], "--tolerance", "100")
    # Every cell's prompt changed: no baseline cell to compare with (exit 2), and it says so.
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 2, said
    assert "share no comparable cell" in said and "--allow-prompt-change" in said
    report = tmp_path / "verdict.json"
    paired = benchlib(
        "compare", changed, "--baseline", desk_runs[0], "--allow-prompt-change",
        "--eval-report", str(report),
    )  # fmt: skip
    assert paired.returncode in (0, 1), paired.stderr  # a verdict, on every cell
    summary = json.loads(report.read_text())["summary"]
    assert (summary["pairs"], summary["uncompared"]) == (3, 0)
