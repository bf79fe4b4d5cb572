"""Multi-step scenarios and the scoring subflow, on real outputs of the embedded model."""

from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from sqlmodel import select

from benchlib import runs
from benchlib.config import build_config
from benchlib.db import session
from benchlib.records import Score
from benchlib.scoring import score_run
from benchlib.settings import tracking_uri
from flows.benchmark import benchmark
from tests.conftest import ROOT
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
