"""Judging without a server: the judge file round trip, its validation, blindness, and the
terminal session driven as a person would (pexpect)."""

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest
from mlflow.tracking import MlflowClient
from sqlmodel import select

from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.evaluation import judging
from benchlib.settings import tracking_uri
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Judgement
from benchlib.tracking import outbox as tracking_outbox
from flows.benchmark import benchmark
from tests.conftest import ROOT
from tests.support.cli import benchlib, config_file
from tests.support.mlflow_cells import cells_table
from tests.support.written import snapshot

GOOD = {"relevance": 4, "actionability": 3, "tone": 5}


@pytest.fixture(scope="module")
def judged_run(prefect_api: str, small_config: dict) -> str:
    values = small_config | {"prompts": ["v1", "v2-mentor"], "n_scenarios": 1, "judge": "human"}
    return benchmark(**build_config(values).model_dump())["run_id"]


def export(run_id: str, judge: str = "") -> dict:
    return json.loads(judging.export_file(runs.get_run(run_id), judge).model_dump_json())


def apply(data: dict) -> dict:
    return judging.apply_file(json.dumps(data), "judge.json")[1]


@pytest.mark.db
def test_export_is_blind_and_shuffled_with_the_seed(judged_run: str) -> None:
    data = export(judged_run)
    assert len(data["items"]) == 2 * 2
    text = json.dumps(data["items"])
    for identity in ("smollm2", "openai", "v1", "v2-mentor", "mentor"):
        assert identity not in text
    assert all(set(item["scores"]) == set(GOOD) for item in data["items"])
    levels = data["rubric"]["criteria"][0]["levels"]
    assert [lvl["score"] for lvl in levels] == [1, 2, 3, 4, 5] and levels[3]["example"]
    assert [i["item_id"] for i in export(judged_run)["items"]] == [
        i["item_id"] for i in data["items"]
    ]


@pytest.mark.db
def test_every_problem_is_listed_and_nothing_applied(judged_run: str) -> None:
    data = export(judged_run)
    data["items"][0]["scores"] = GOOD | {"relevance": 7}
    data["items"][1]["scores"] = {"relevance": 2, "actionability": None, "tone": None}
    data["items"][2]["scores"] = GOOD | {"charm": 3}
    data["items"][3]["scores"] = GOOD
    data["items"].append(dict(data["items"][3]))
    data["items"].append(dict(data["items"][3], item_id="i-made-up"))
    with pytest.raises(BenchlibError) as info:
        apply(data)
    message = str(info.value)
    for expected in (
        "judge: empty",
        "relevance = 7 is out of range 1–5",
        "missing scores for ['actionability', 'tone']",
        "unknown criteria ['charm']",
        "appears more than once",
        "item i-made-up: unknown item",
        "nothing applied",
    ):
        assert expected in message
    assert judging.judgements_of(judged_run) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(rubric_version="tip-v0"), "is not the run's rubric"),
        (lambda d: d.update(run_id="no-such-run"), "no run 'no-such-run'"),
        (lambda d: d.pop("items"), "items: Field required"),
    ],
)
def test_wrong_rubric_wrong_run_and_bad_structure(judged_run: str, change, expected) -> None:
    data = export(judged_run) | {"judge": "ann"}
    change(data)
    with pytest.raises(BenchlibError, match=expected):
        apply(data)


def test_malformed_json_is_refused(judged_run: str) -> None:
    with pytest.raises(BenchlibError, match=r"judge\.json: malformed JSON"):
        judging.apply_file("{not json", "judge.json")


@pytest.mark.db
def test_apply_twice_changes_nothing_and_judges_stay_apart(judged_run: str) -> None:
    data = export(judged_run) | {"judge": "carl"}
    for item in data["items"][:2]:
        item["scores"] = GOOD
    assert apply(data) == {"added": 2, "updated": 0, "unchanged": 0}
    assert apply(data) == {"added": 0, "updated": 0, "unchanged": 2}
    data["items"][0]["scores"] = GOOD | {"tone": 1}
    assert apply(data) == {"added": 0, "updated": 1, "unchanged": 1}
    # Another judge's file never shows carl's scores, and carl's own export leaves them out.
    assert all(v is None for i in export(judged_run, "dana")["items"] for v in i["scores"].values())
    assert len(export(judged_run, "carl")["items"]) == 2
    with session() as s:
        rows = s.exec(select(Judgement).where(Judgement.run_id == judged_run)).all()
    assert {(r.judge, r.rubric_version) for r in rows} == {("carl", "tip-v1")}


def test_terminal_judging_as_a_person_would(judged_run: str) -> None:
    env = dict(os.environ, COLUMNS="120", TERM="dumb")
    command = f"{sys.executable} -m benchlib.cli judge {judged_run} --judge erin"
    child = pexpect.spawn(command, cwd=str(ROOT), env=env, encoding="utf-8", timeout=60)
    child.expect("0/4 done")
    child.expect("item 1/4")
    for answer in ("4", "3", "5"):  # relevance, actionability, tone
        child.expect(r"\[1/2/3/4/5/s/b/q\]")
        child.sendline(answer)
    child.expect("item 2/4")
    child.expect(r"\[1/2/3/4/5/s/b/q\]")
    child.sendline("s")  # skip item 2
    child.expect("item 3/4")
    child.expect(r"\[1/2/3/4/5/s/b/q\]")
    child.sendline("9")  # not a level: asked again
    child.expect("Please select one of the available options")
    child.sendline("b")  # back to item 2
    child.expect("item 2/4")
    child.expect(r"\[1/2/3/4/5/s/b/q\]")
    child.sendline("q")
    child.expect("Stopped; 1/4 judged")
    child.expect(pexpect.EOF)
    assert len([j for j in judging.judgements_of(judged_run) if j.judge == "erin"]) == 1

    # Resumable: a new session starts at the first item erin has not judged.
    child = pexpect.spawn(command, cwd=str(ROOT), env=env, encoding="utf-8", timeout=60)
    child.expect("1/4 done")
    child.expect("item 2/4")
    for _ in range(3):
        for answer in ("2", "2", "3"):
            child.expect(r"\[1/2/3/4/5/s/b/q\]")
            child.sendline(answer)
    child.expect("Done: 4/4 judged by erin")
    child.expect(pexpect.EOF)
    run = runs.get_run(judged_run)
    assert judging.pending_items(run, "erin") == []
    assert run.leaderboard["metric"] == "composite"  # refreshed after the session
    # MLflow's cells table follows: no output left to judge.
    assert tracking_outbox.sync(judged_run, timeout_s=60) == 0
    assert not cells_table(MlflowClient(tracking_uri("")), run)["judge_pending"].any()


def test_cli_run_without_a_terminal_says_judgements_are_pending(
    prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "c.yaml",
        small_config,
        "prompts: [v1]\nn_scenarios: 1\nn_candidates: 1\nmax_tokens: 16\n",
    )
    result = benchlib("run", "--config", str(config), prefect_api=prefect_api)
    assert result.returncode == 0, result.stderr
    assert "1 outputs await human judgement" in " ".join(result.stdout.split())


def test_judging_a_run_made_with_a_relative_suite_path_needs_no_suite_folder(
    prefect_api: str, small_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judgements and the leaderboard they change, from a folder where `prompts/tips` is
    not: judging rescores the human scores and composites only."""
    monkeypatch.chdir(ROOT)
    values = small_config | {"suite": "prompts/tips", "prompts": ["v1"], "n_scenarios": 1}
    run_id = benchmark(**build_config(values | {"judge": "human"}).model_dump())["run_id"]
    data = export(run_id) | {"judge": "ann"}
    for item in data["items"]:
        item["scores"] = dict(GOOD)
    path = tmp_path / "judge.json"
    path.write_text(json.dumps(data))
    result = benchlib("judge", "apply", str(path), prefect_api=prefect_api, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(judging.judgements_of(run_id)) == len(data["items"])
    assert "Leaderboard" in result.stdout

    # A bad file there: refused whole, nothing written.
    data["items"][0]["scores"]["tone"] = True
    path.write_text(json.dumps(data))
    before = snapshot()
    result = benchlib("judge", "apply", str(path), prefect_api=prefect_api, cwd=tmp_path)
    assert result.returncode == 2
    assert "items.0.scores.tone" in result.stderr
    assert before.changes(snapshot()) == []
