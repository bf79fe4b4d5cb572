"""An experiment across its runs: two runs of one experiment, the second re-running one prompt
version unchanged and another edited. The experiment leaderboard pools what is the same cell
(its latest result), keeps an edited prompt apart, carries judgements to the same output in
another run, and says which runs contributed, through the CLI and the admin API.

Runs are written into the real database (tests/support/crafted.py); the CLI is the real command
in a subprocess, the API a real uvicorn server on loopback."""

import json
import uuid
from pathlib import Path

import httpx
import pytest

from benchlib.api.app import create_app
from benchlib.api.settings import ApiSettings
from benchlib.config import build_config
from benchlib.evaluation import judging
from benchlib.evaluation.experiment import ExperimentLeaderboard, experiment_leaderboard
from benchlib.store import runs
from flows.benchmark import benchmark
from tests.support.cli import benchlib
from tests.support.crafted import make_run
from tests.support.servers import serve_app

TOKEN = "experiments-token"
OLD_V2, NEW_V2 = "aaaaaaaa-old", "bbbbbbbb-new"


def cells(prompt: str, prompt_hash: str, format_ok: float, text: str = "same") -> list[dict]:
    """Three scenarios of one prompt version, every output scored `format_ok`."""
    return [
        {
            "scenario": f"s{i}",
            "prompt": prompt,
            "prompt_hash": prompt_hash,
            "scores": {"format_ok": [format_ok], "overlong": [0.0]},
            "text": text,
        }
        for i in range(3)
    ]


@pytest.fixture(scope="module")
def experiment() -> tuple[str, str, str]:
    """(experiment, older run, newer run): v1 run twice unchanged (worse the first time), v2
    edited between the runs."""
    name = f"exp-{uuid.uuid4().hex[:8]}"
    older = make_run(
        f"{name}-a", cells("v1", "p", 0.0) + cells("v2", OLD_V2, 1.0), 60, experiment=name
    )
    newer = make_run(
        f"{name}-b", cells("v1", "p", 1.0) + cells("v2", NEW_V2, 0.0), 0, experiment=name
    )
    make_run(f"{name}-other", cells("v1", "p", 0.0), 30, experiment=f"{name}-elsewhere")
    return name, older, newer


def rows_of(board: ExperimentLeaderboard) -> dict[str, dict]:
    return {row.prompt: row.model_dump() for row in board.rows}


def test_same_cells_count_once_and_an_edited_prompt_is_its_own_row(experiment) -> None:
    name, older, newer = experiment
    board = experiment_leaderboard(name)
    rows = rows_of(board)
    assert sorted(rows) == ["v1", "v2@aaaaaaaa", "v2@bbbbbbbb"]
    # v1 ran in both runs: each cell once, with the newer run's (better) result.
    assert rows["v1"]["n_cells"] == 3 and rows["v1"]["n_outputs"] == 3
    assert rows["v1"]["mean"] > rows["v2@bbbbbbbb"]["mean"]
    assert rows["v2@aaaaaaaa"]["mean"] == rows["v1"]["mean"]  # both format_ok 1, overlong 0
    assert board.rows[0].prompt in ("v1", "v2@aaaaaaaa")
    assert board.split == ["prompt v2"]
    contributed = {(r.run_id, r.cells, r.superseded) for r in board.runs}
    assert contributed == {(older, 3, 3), (newer, 6, 0)}
    assert all(r.run_id.startswith(name + "-") and r.run_id != f"{name}-other" for r in board.runs)
    assert board.metric == "auto_composite" and board.rubric.startswith("tip-v1@")


def test_a_judgement_follows_its_output_into_the_newer_run(experiment) -> None:
    name, older, newer = experiment
    run = runs.get_run(older)
    cells_of = {cell.id: cell for cell in runs.run_cells(older)}
    v1_item = next(
        item
        for item in judging.judge_items(run)
        if cells_of[item.cell_id].prompt_version == "v1"
        and cells_of[item.cell_id].scenario_id == "s0"
    )
    scored = judging.Scored(
        item_id=v1_item.item_id, scores={"relevance": 5, "actionability": 5, "tone": 5}
    )
    judging.apply_judgements(older, "ann", [scored], "test")
    board = experiment_leaderboard(name)
    rows = rows_of(board)
    # The v1 cell counted is the newer run's, with the same output: the judgement counts there.
    assert board.metric == "composite"
    assert rows["v1"]["n_judged"] == 1 and rows["v1"]["criteria"]["relevance"] == 5.0
    assert rows["v2@bbbbbbbb"]["n_judged"] == 0
    assert {r.run_id: r.judgements for r in board.runs} == {older: 1, newer: 0}


def test_an_edited_output_does_not_inherit_the_judgement() -> None:
    name = f"exp-{uuid.uuid4().hex[:8]}"
    older = make_run(f"{name}-a", cells("v1", "p", 1.0, text="old"), 60, experiment=name)
    make_run(f"{name}-b", cells("v1", "p", 1.0, text="new"), 0, experiment=name)
    item = judging.judge_items(runs.get_run(older))[0]
    scored = judging.Scored(
        item_id=item.item_id, scores={"relevance": 5, "actionability": 5, "tone": 5}
    )
    judging.apply_judgements(older, "ann", [scored], "test")
    board = experiment_leaderboard(name)
    assert board.rows[0].n_judged == 0 and board.metric == "auto_composite"


def test_the_cli_and_the_api_answer_the_same_board(experiment, tmp_path: Path) -> None:
    name, older, newer = experiment
    out = tmp_path / "board.json"
    done = benchlib("leaderboard", "--experiment", name, "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert f"experiment {name}" in done.stdout and older in done.stdout and newer in done.stdout
    assert "v2@bbbbbbbb" in done.stdout and "prompt v2: several contents" in done.stdout
    from_cli = json.loads(out.read_text())
    with serve_app(create_app(ApiSettings(token=TOKEN)), "/api/health") as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        reply = httpx.get(f"{url}/api/experiments/{name}/leaderboard", headers=headers)
        missing = httpx.get(f"{url}/api/experiments/nope-{name}/leaderboard", headers=headers)
    assert reply.status_code == 200, reply.text
    from_api = reply.json()
    assert [(r["prompt"], r["n_cells"]) for r in from_api["rows"]] == [
        (r["prompt"], r["n_cells"]) for r in from_cli["rows"]
    ]
    assert {r["run_id"] for r in from_api["runs"]} == {older, newer}
    assert missing.status_code == 404 and "no finished run" in missing.json()["detail"]


def test_the_cli_wants_a_run_or_an_experiment(experiment) -> None:
    name, older, _ = experiment
    both = benchlib("leaderboard", older, "--experiment", name)
    neither = benchlib("leaderboard")
    for done in (both, neither):
        assert done.returncode == 2
        assert "give a run id or --experiment NAME" in done.stdout + done.stderr


GOOD = {"relevance": 4, "actionability": 4, "tone": 4}


def test_a_run_export_and_the_api_both_give_only_unjudged_items(tmp_path: Path) -> None:
    run_id = make_run(f"unjudged-{uuid.uuid4().hex[:8]}", cells("v1", "p", 1.0))
    first = judging.judge_items(runs.get_run(run_id))[0]
    judging.apply_judgements(
        run_id, "ann", [judging.Scored(item_id=first.item_id, scores=GOOD)], "t"
    )
    out = tmp_path / "judge.json"
    done = benchlib("judge", "export", run_id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    exported = [item["item_id"] for item in json.loads(out.read_text())["items"]]
    with serve_app(create_app(ApiSettings(token=TOKEN)), "/api/health") as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        served = httpx.get(f"{url}/api/runs/{run_id}/judging", headers=headers).json()
    assert exported == [item["item_id"] for item in served["items"]]
    assert len(exported) == 2 and first.item_id not in exported


def test_an_experiment_export_spans_its_runs_and_applies_to_each(tmp_path: Path) -> None:
    name = f"exp-{uuid.uuid4().hex[:8]}"
    older = make_run(
        f"{name}-a", cells("v1", "p", 0.0) + cells("v2", OLD_V2, 1.0), 60, experiment=name
    )
    newer = make_run(
        f"{name}-b", cells("v1", "p", 1.0) + cells("v2", NEW_V2, 0.0), 0, experiment=name
    )
    # An output judged in the older run is judged for the experiment: not exported again.
    judged = judging.judge_items(runs.get_run(older))
    cells_of = {cell.id: cell for cell in runs.run_cells(older)}
    v1_item = next(i for i in judged if cells_of[i.cell_id].prompt_version == "v1")
    judging.apply_judgements(
        older, "ann", [judging.Scored(item_id=v1_item.item_id, scores=GOOD)], "t"
    )

    out = tmp_path / "experiment.json"
    done = benchlib("judge", "export", "--experiment", name, "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["experiment"] == name and data["run_id"] == ""
    # v1 counted from the newer run less the one judged, v2 twice (old and new text): 2 + 3 + 3.
    assert len(data["items"]) == 8 and len({i["item_id"] for i in data["items"]}) == 8
    text = json.dumps(data["items"])
    assert "v1" not in text and "v2" not in text and older not in text and newer not in text

    bad = dict(data, judge="bob", items=[dict(i, scores=GOOD) for i in data["items"]])
    bad["items"].append(dict(bad["items"][0], item_id="i-made-up"))
    out.write_text(json.dumps(bad))
    refused = benchlib("judge", "apply", str(out))
    assert refused.returncode == 2 and "i-made-up: unknown item for experiment" in refused.stderr
    assert {j.judge for j in judging.judgements_of(newer)} == set()

    out.write_text(json.dumps(dict(bad, items=bad["items"][:-1])))
    applied = benchlib("judge", "apply", str(out))
    assert applied.returncode == 0, applied.stderr
    assert f"run {older}: 3 added" in applied.stdout and f"run {newer}: 5 added" in applied.stdout
    board = experiment_leaderboard(name)
    assert all(row.judge_coverage == 1.0 for row in board.rows)
    again = benchlib("judge", "export", "--experiment", name, "--out", str(out))
    assert again.returncode == 0 and json.loads(out.read_text())["items"] == []


def test_a_real_run_again_supersedes_its_cells(prefect_api: str, small_config: dict) -> None:
    """Two real runs of one config (the second from the response cache): the planned cells'
    identities match, so the board counts the second run's cells once."""
    name = f"exp-real-{uuid.uuid4().hex[:8]}"
    values = small_config | {
        "prompts": ["v1"],
        "n_candidates": 1,
        "no_cache": False,
        "experiment": name,
    }
    first = benchmark(**build_config(values).model_dump())["run_id"]
    second = benchmark(**build_config(values).model_dump())["run_id"]
    board = experiment_leaderboard(name)
    assert [(row.prompt, row.n_cells) for row in board.rows] == [("v1", 2)]
    assert [(r.run_id, r.cells, r.superseded) for r in board.runs] == [
        (first, 0, 2),
        (second, 2, 0),
    ]
    assert board.split == []


def test_an_edited_scenario_is_its_own_scenario_in_the_row() -> None:
    name = f"exp-{uuid.uuid4().hex[:8]}"
    edited = [
        dict(cell, scenario_hash="cccccccc-new") if cell["scenario"] == "s0" else cell
        for cell in cells("v1", "p", 1.0)
    ]
    make_run(f"{name}-a", cells("v1", "p", 0.0), 60, experiment=name)
    make_run(f"{name}-b", edited, 0, experiment=name)
    board = experiment_leaderboard(name)
    (row,) = board.rows
    # s1 and s2 re-ran unchanged (counted once); s0 was edited: its old and new versions both.
    assert board.split == ["scenario s0"] and row.n_cells == 4 and row.n_scenarios == 4
