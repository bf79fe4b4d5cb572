"""Multi-step scenarios and the scoring subflow, on real outputs of the embedded model."""

import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from sqlmodel import select

from benchlib.config import build_config
from benchlib.evaluation import judging
from benchlib.evaluation.leaderboard import Leaderboard
from benchlib.evaluation.scoring import score_run
from benchlib.settings import tracking_uri
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Score
from flows.benchmark import benchmark
from tests.conftest import ROOT
from tests.support.cli import benchlib
from tests.support.mlflow_cells import cells_table


def scores_of(run_id: str) -> list[Score]:
    with session() as s:
        return list(s.exec(select(Score).where(Score.run_id == run_id)))


@pytest.fixture(scope="module")
def analysts_run(prefect_api: str, llm_url: str) -> str:
    config = build_config(
        {
            "suite": str(ROOT / "prompts" / "analysts"),
            "models": ["openai:smollm2"],
            "openai_base_url": f"{llm_url}/v1",
            "prompts": ["bundle", "single"],
            "n_scenarios": 1,
            "n_candidates": 2,
            "max_tokens": 160,
        }
    )
    return benchmark(**config.model_dump())["run_id"]


def test_every_step_of_every_attempt_is_recorded(analysts_run: str) -> None:
    candidates = runs.run_candidates(analysts_run)
    by_cell = Counter((c.cell_id, c.step) for c in candidates)
    steps = sorted({step for _, step in by_cell})
    assert steps == ["bear", "bull", "moderator", "output"]
    assert set(by_cell.values()) == {2}
    moderator = next(c for c in candidates if c.step == "moderator")
    bull = next(c for c in candidates if c.step == "bull" and c.index == moderator.index)
    # The moderator's prompt was rendered with the bull's actual output.
    assert bull.parsed["thesis"] in moderator.messages[-1]["content"]


def test_all_scorers_and_the_composite_formula_are_stored(analysts_run: str) -> None:
    scores = scores_of(analysts_run)
    names = {s.name for s in scores}
    assert {"schema_validity", "completeness", "policy_compliance"} <= names
    assert {"reference_consistency", "stability", "format_ok", "auto_composite"} <= names
    auto = [s for s in scores if s.name == "auto_composite"]
    assert auto and all(s.formula == "2·format_ok" for s in auto)
    assert all(s.version.startswith("analyst-v1@") for s in auto)
    assert all(0.0 <= s.value <= 1.0 for s in scores if s.name != "auto_composite")
    assert runs.get_run(analysts_run).scored_at is not None


def test_rescoring_replaces_rather_than_adds(analysts_run: str) -> None:
    before = Counter(s.name for s in scores_of(analysts_run))
    assert score_run(analysts_run) == sum(before.values())
    assert Counter(s.name for s in scores_of(analysts_run)) == before


def test_chain_cells_get_per_step_scores_in_mlflow(analysts_run: str) -> None:
    run = runs.get_run(analysts_run)
    table = cells_table(MlflowClient(tracking_uri("")), run).set_index("prompt_version")
    per_step = ["moderator.schema_validity", "bull.reference_consistency"]
    assert {*per_step, "stability"} <= set(table.columns)
    assert "output.stability" not in table.columns  # single-step cells keep plain names
    assert table.loc["bundle", per_step].notna().all()
    assert table.loc["single", per_step].isna().all()


def test_a_chain_is_ranked_on_its_final_step(analysts_run: str) -> None:
    board = Leaderboard.model_validate(runs.get_run(analysts_run).leaderboard)
    bundle = next(row for row in board.rows if row.prompt == "bundle")
    # 1 scenario × 2 attempts of the moderator: not 6 outputs of three steps.
    assert bundle.ranked_steps == ["moderator"] and bundle.n_outputs == 2
    assert [(s.step, s.ranked, s.outputs) for s in bundle.steps] == [
        ("bull", False, 2),
        ("bear", False, 2),
        ("moderator", True, 2),
    ]
    ids = {c.id for c in runs.run_candidates(analysts_run) if c.step == "moderator"}
    moderator = [
        s.value
        for s in scores_of(analysts_run)
        if s.name == "auto_composite" and s.candidate_id in ids
    ]
    assert bundle.mean == pytest.approx(sum(moderator) / len(moderator))
    # One scenario: the mean comes without an interval, and says why.
    assert bundle.ci_low is None and "an interval needs at least 2" in bundle.interval_note
    items = judging.judge_items(runs.get_run(analysts_run))
    assert {item.candidate_id for item in items} <= final_ids(analysts_run)


def final_ids(run_id: str) -> set[int]:
    return {c.id for c in runs.run_candidates(run_id) if c.step in ("moderator", "output")}


def test_show_prints_a_compact_leaderboard_with_its_steps_labelled(analysts_run: str) -> None:
    shown = benchlib("show", analysts_run, env=os.environ | {"COLUMNS": "100"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Leaderboard"))
    board_lines = lines[start:]
    assert max(len(line) for line in board_lines) <= 100
    text = " ".join(" ".join(board_lines).split())  # notes wrap at the terminal's width
    assert "ranked on the final step of each chain" in text
    header = next(line for line in board_lines if "coverage" in line)
    assert all(word in header for word in ("model", "prompt", "auto_composite", "95% CI"))
    steps = next(line for line in board_lines if "moderator" in line and "bull" in line)
    assert "bear" in steps
    assert "interval n/a: 1 scenario carries auto_composite" in text
    wide = benchlib("show", analysts_run, "--wide", env=os.environ | {"COLUMNS": "300"}).stdout
    assert "step moderator" in wide and "schema_validity" in wide


def test_a_failed_step_fails_the_rest_of_the_chain(
    prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    suite = tmp_path / "chain"
    (suite / "versions").mkdir(parents=True)
    (suite / "suite.yaml").write_text("name: chain\nscorers: [schema_validity]\n")
    (suite / "scenarios.yaml").write_text("scenarios: [{id: one, word: hello}]\n")
    (suite / "schema.json").write_text('{"type": "object", "required": ["answer"]}')
    (suite / "rubric.yaml").write_text(
        yaml.safe_dump(
            {
                "version": "r1",
                "criteria": [
                    {
                        "name": "ok",
                        "question": "ok?",
                        "levels": [
                            {"score": 0, "description": "no", "example": "x"},
                            {"score": 1, "description": "yes", "example": "y"},
                        ],
                    }
                ],
                "composite": {"ok": 1},
            }
        )
    )
    (suite / "versions" / "v.yaml").write_text(
        "steps:\n"
        "  - {name: first, user: 'Say {{ word }} in one word, no JSON.'}\n"
        "  - {name: second, user: 'Repeat {{ steps.first.answer }}'}\n"
        "  - {name: third, user: 'Again {{ steps.second.answer }}'}\n"
    )
    values = small_config | {"suite": str(suite), "prompts": [], "n_candidates": 1, "max_tokens": 8}
    run_id = benchmark(**build_config(values).model_dump())["run_id"]
    candidates = {c.step: c for c in runs.run_candidates(run_id)}
    assert candidates["first"].text and candidates["first"].error is None
    assert candidates["second"].error.startswith("step 'second' not run")
    assert candidates["third"].error == candidates["second"].error
    assert runs.run_cells(run_id)[0].status == "completed"
    failed = [s for s in scores_of(run_id) if s.candidate_id == candidates["third"].id]
    assert [(s.value, s.explanation) for s in failed] == [(0.0, candidates["third"].error)]
    # The leaderboard shows the steps that did not run, with the reason.
    [row] = runs.get_run(run_id).leaderboard["rows"]
    assert [(s["step"], s["not_run"]) for s in row["steps"]] == [
        ("first", 0),
        ("second", 1),
        ("third", 1),
    ]
    assert row["steps"][2]["reasons"] == [candidates["third"].error]
