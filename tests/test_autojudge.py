"""The model judge on real outputs: the embedded model judges a small run's blind items through
the `benchlib` command. What is tested is the plumbing (blindness, constrained answers, the
cache, malformed answers, refusals) and the agreement figures against judgements written here;
the embedded model's scores themselves are poor."""

import json
from collections import defaultdict
from pathlib import Path

import httpx
import krippendorff
import numpy as np
import pytest
from sqlmodel import select

from benchlib.api.app import create_app
from benchlib.api.settings import ApiSettings
from benchlib.config import build_config
from benchlib.evaluation import autojudge, judging, reports
from benchlib.evaluation.stats import bootstrap_mean
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Judgement, LLMCall, Run, Score
from flows.benchmark import benchmark
from tests.support.cli import benchlib
from tests.support.servers import serve_app

JUDGE = "openai:smollm2"  # the embedded model, which also wrote the outputs
TOKEN = "agreement-test-token"


@pytest.fixture(scope="module")
def run_id(prefect_api: str, small_config: dict) -> str:
    values = small_config | {"n_candidates": 1, "judge": "skip"}
    return benchmark(**build_config(values).model_dump())["run_id"]


def judge_calls(run_id: str) -> list[LLMCall]:
    with session() as s:
        query = select(LLMCall).where(LLMCall.run_id == run_id, LLMCall.step == "judge")
        return list(s.exec(query))


def model_judgements(run_id: str) -> list[Judgement]:
    return [j for j in judging.judgements_of(run_id) if autojudge.is_model_judge(j.judge)]


def auto(run_id: str, *extra: str) -> tuple[int, str]:
    done = benchlib("judge", "auto", run_id, "--model", JUDGE, *extra)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", JUDGE], "pass --allow-self-judge"),
        (["--model", "openai:no-such-judge", "--allow-self-judge"], "unknown model"),
        (["--model", "gpt-4o", "--allow-self-judge"], "is not a model spec"),
        (
            ["--model", JUDGE, "--allow-self-judge", "--max-model-b", "0.1"],
            "more than max_model_b = 0.1B",
        ),
        (["--model", JUDGE, "--allow-self-judge", "--sample", "0"], "--sample: expected"),
        (["--model", JUDGE, "--allow-self-judge", "--sample", "many"], "got 'many'"),
    ],
    ids=["self-judge", "unknown", "not-a-spec", "too-big", "sample-zero", "sample-word"],
)
def test_bad_judge_input_is_refused_and_nothing_written(
    run_id: str, args: list[str], expected: str
) -> None:
    before = (len(judging.judgements_of(run_id)), len(judge_calls(run_id)))
    done = benchlib("judge", "auto", run_id, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert (len(judging.judgements_of(run_id)), len(judge_calls(run_id))) == before


def test_model_judges_blind_constrained_and_cached(run_id: str) -> None:
    run = runs.get_run(run_id)
    items = judging.judge_items(run)
    code, output = auto(run_id, "--allow-self-judge")
    assert code == 0, output
    judgements = model_judgements(run_id)
    assert len(judgements) == len(items) == 4
    judge = judgements[0].judge
    assert judge.startswith(f"model:{JUDGE}") and judge.endswith(
        f"#{autojudge.PROMPT_VERSION}.{autojudge.PROMPT_HASH}"
    )
    # Constrained decoding: every answer gave every criterion one of its levels.
    rubric = judging.rubric_of(run)
    for j in judgements:
        assert set(j.scores) == {c.name for c in rubric.criteria}, j.comment
        assert all(j.scores[c.name] in c.scores for c in rubric.criteria), j.comment
    calls = judge_calls(run_id)
    assert len(calls) == 4 and all(c.status_code == 200 for c in calls)
    cells = runs.run_cells(run_id)
    for call in calls:
        schema = call.request["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["tone"]["enum"] == [1, 2, 3, 4, 5]
        prompt = json.dumps(call.request["messages"])
        for identity in ("smollm2", "openai", "v2-mentor", "mentor", "v1", run_id):
            assert identity not in prompt
        for cell in cells:
            assert cell.id not in prompt and cell.prompt_hash not in prompt
        assert "Example:" in prompt  # every level comes with its calibrated example
    # A second run answers from the cache: no provider call, nothing changes.
    code, output = auto(run_id, "--allow-self-judge")
    assert code == 0, output
    assert "0 added, 0 updated, 4 unchanged" in output and "0 provider call(s)" in output
    assert len(judge_calls(run_id)) == 4


def test_a_malformed_answer_is_recorded_as_a_failed_judgement(run_id: str) -> None:
    """Two tokens cut the JSON short: each answer is recorded with its raw text, no crash; the
    composite ignores it. Judging again with room to answer replaces them (from the cache)."""
    code, output = auto(run_id, "--allow-self-judge", "--max-tokens", "2")
    assert code == 0, output
    assert "4 malformed answer(s)" in output
    failed = model_judgements(run_id)
    assert all(j.scores == {} for j in failed)
    assert all(j.comment.startswith("malformed judge answer: not JSON") for j in failed)
    assert all("raw answer: '" in j.comment for j in failed)
    calls = len(judge_calls(run_id))
    code, output = auto(run_id, "--allow-self-judge")
    assert code == 0 and "4 updated" in output and "0 provider call(s)" in output
    assert len(judge_calls(run_id)) == calls


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not JSON"),
        ("[4, 3, 5]", "expected a JSON object"),
        ('{"relevance": 4, "actionability": 3}', "no score for 'tone'"),
        ('{"relevance": 4, "actionability": 3, "tone": 9}', "tone = 9 is not one of"),
        ('{"relevance": true, "actionability": 3, "tone": 5}', "relevance = True"),
        ('{"relevance": 4.5, "actionability": 3, "tone": 5}', "relevance = 4.5"),
        ('{"relevance": 4, "actionability": 3, "tone": 5, "x": 1}', "unknown criterion 'x'"),
    ],
)
def test_answers_outside_the_rubric_are_malformed(run_id: str, text: str, why: str) -> None:
    scores, problem = autojudge.parse_answer(judging.rubric_of(runs.get_run(run_id)), text)
    assert scores is None and why in problem


def test_sample_spreads_over_rows_and_scenarios(run_id: str, tmp_path: Path) -> None:
    run = runs.get_run(run_id)
    items = judging.judge_items(run)
    cells = {c.id: c for c in runs.run_cells(run_id)}
    picked = autojudge.stratified_sample(run, items, 2)
    assert len(picked) == 2 == len(autojudge.stratified_sample(run, items, 0.5))
    assert {cells[i.cell_id].prompt_version for i in picked} == {"v1", "v2-mentor"}
    assert len({cells[i.cell_id].scenario_id for i in picked}) == 2
    assert autojudge.stratified_sample(run, items, 2) == picked
    assert len(autojudge.stratified_sample(run, items, 0.1)) == 1
    assert len(autojudge.stratified_sample(run, items, 99)) == 4
    out = tmp_path / "spot.json"
    done = benchlib("judge", "export", run_id, "--out", str(out), "--sample", "2")
    assert done.returncode == 0, done.stderr
    exported = [i["item_id"] for i in json.loads(out.read_text())["items"]]
    assert exported == [i.item_id for i in picked]


def test_agreement_with_people_on_the_items_both_judged(run_id: str) -> None:
    """People judge three of the four items; the figures match krippendorff and a bootstrap of
    the per-scenario differences computed here; the composite then uses people only."""
    run = runs.get_run(run_id)
    code, output = auto(run_id, "--allow-self-judge")  # from the cache
    assert code == 0, output
    items = judging.judge_items(run)[:3]
    model = {j.candidate_id: j.scores for j in model_judgements(run_id)}
    people = {
        "alice": [{"relevance": 1 + k, "actionability": 2, "tone": 5 - k} for k in range(3)],
        "bob": [{"relevance": 2 + k, "actionability": 3, "tone": 4} for k in range(3)],
    }
    for judge, scores in people.items():
        judging.apply_judgements(
            run_id,
            judge,
            [
                judging.Scored(item_id=item.item_id, scores=given)
                for item, given in zip(items, scores, strict=True)
            ],
            "test",
        )
    reports.refresh_leaderboard(run_id)
    result = autojudge.calibration(run_id)
    [entry] = result.judges
    assert entry.people == ["alice", "bob"] and entry.items == 3
    scenario = {c.id: c.scenario_id for c in runs.run_cells(run_id)}
    for figures in entry.criteria:
        name = figures.criterion
        mean_people = [np.mean([people[p][k][name] for p in people]) for k in range(3)]
        theirs = [model[i.candidate_id][name] for i in items]
        order = np.argsort([i.candidate_id for i in items])
        data = np.array([mean_people, theirs])[:, order]
        if np.unique(data).size > 1:
            expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
            assert figures.alpha == pytest.approx(expected)
        by_scenario = defaultdict(list)
        for k, item in enumerate(items):
            by_scenario[scenario[item.cell_id]].append(theirs[k] - mean_people[k])
        differences = np.array([np.mean(v) for v in by_scenario.values()])
        bias = bootstrap_mean(differences, run.config["seed"])
        assert (figures.bias, figures.bias_low, figures.bias_high) == pytest.approx(tuple(bias))
        assert figures.items == 3 and figures.scenarios == len(by_scenario) and figures.thin
    # Never mixed: the composite's criteria are the people's mean, though the model judged too.
    judged = {i.candidate_id: k for k, i in enumerate(items)}
    with session() as s:
        rows = s.exec(select(Score).where(Score.run_id == run_id, Score.name == "relevance"))
        relevance = {row.candidate_id: row for row in rows}
    for candidate, k in judged.items():
        assert relevance[candidate].value == np.mean([people[p][k]["relevance"] for p in people])
        assert relevance[candidate].explanation == "mean of 2 judge(s)"
    assert not set(relevance) - set(judged)  # the item people left is not scored by the model

    done = benchlib("judge", "agreement", run_id)
    assert done.returncode == 0 and "alpha" in done.stdout and "thin evidence" in done.stdout
    with serve_app(create_app(ApiSettings(token=TOKEN)), "/api/health") as api:
        reply = httpx.get(
            f"{api}/api/runs/{run_id}/agreement", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == json.loads(result.model_dump_json())
        missing = httpx.get(
            f"{api}/api/runs/no-such-run/agreement", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert missing.status_code == 404


def relevance_scores(run_id: str) -> dict[int, Score]:
    with session() as s:
        rows = s.exec(select(Score).where(Score.run_id == run_id, Score.name == "relevance"))
        return {row.candidate_id: row for row in rows}


def set_judges(run_id: str, judges: str) -> None:
    with session() as s:
        run = s.get(Run, run_id)
        run.config = run.config | {"judges": judges}
        s.add(run)


def test_the_leaderboard_shows_agreement_and_whose_judgements_it_used(
    run_id: str, tmp_path: Path
) -> None:
    """After people judged (the test above), the board carries the model judge's agreement,
    the terminal leaderboard and the HTML report show it, and `judges` picks whose judgements
    the composite uses: people by default, the model alone, or both, the board saying which."""
    if not [j for j in judging.judgements_of(run_id) if not autojudge.is_model_judge(j.judge)]:
        pytest.skip("needs the people's judgements of the agreement test")
    run = runs.get_run(run_id)
    board = reports.refresh_leaderboard(run_id)
    assert board.judges == "human" and board.judged_by == "people"
    assert board.model_agreement == autojudge.calibration(run_id).judges
    assert board.model_agreement[0].items == 3
    done = benchlib("leaderboard", run_id)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "Judged by people (judges: human)." in text
    assert f"{board.model_agreement[0].model_judge} vs people on 3 item(s) (thin evidence)" in text
    assert "relevance alpha" in text
    html = reports.render_html(run, board)
    assert 'id="model-agreement"' in html and "Judged by people (judges: human)." in html

    model = {j.candidate_id: j.scores for j in model_judgements(run_id)}
    try:
        set_judges(run_id, "model")
        board = reports.refresh_leaderboard(run_id)
        assert board.judges == "model" and board.judged_by == "model judges"
        relevance = relevance_scores(run_id)
        assert set(relevance) == set(model)  # every item the model judged, people or not
        assert all(relevance[c].value == model[c]["relevance"] for c in model)
        assert all(row.explanation == "mean of 1 judge(s)" for row in relevance.values())
        set_judges(run_id, "all")
        board = reports.refresh_leaderboard(run_id)
        assert board.judged_by == "people and model judges"
        counts = sorted(row.explanation for row in relevance_scores(run_id).values())
        assert counts == ["mean of 1 judge(s)"] + ["mean of 3 judge(s)"] * 3
    finally:
        set_judges(run_id, "human")
        reports.refresh_leaderboard(run_id)


OLLAMA_JUDGE = "ollama:smollm2:135m"  # the embedded model behind the Ollama shim: another spec


def test_the_flow_judges_with_a_model_after_generation_then_waits_for_people(
    prefect_api: str, small_config: dict, ollama_server
) -> None:
    """`judge: human+model`: the judge model scores every blind item after the last block,
    loaded once and unloaded; its calls are in the call log after every generation call; the
    items stay pending for people; with no person yet, the composite is the model's and the
    board says so."""
    url, state = ollama_server
    loads, unloads = state.loads, state.unloads
    values = small_config | {
        "n_candidates": 1,
        "judge": "human+model",
        "judge_model": OLLAMA_JUDGE,
        "ollama_url": url,
    }
    result = benchmark(**build_config(values).model_dump())
    run = runs.get_run(result["run_id"])
    judgements = model_judgements(run.id)
    assert len(judgements) == 4 and all(j.scores for j in judgements)
    assert {j.judge.split("#")[0].split("@")[0] for j in judgements} == {f"model:{OLLAMA_JUDGE}"}
    assert (state.loads - loads, state.unloads - unloads) == (1, 1)
    calls = judge_calls(run.id)
    assert len(calls) == 4 and {c.model for c in calls} == {OLLAMA_JUDGE}
    with session() as s:
        query = select(LLMCall).where(LLMCall.run_id == run.id, LLMCall.step != "judge")
        generated = list(s.exec(query))
    assert generated and min(c.started_at for c in calls) >= max(c.started_at for c in generated)
    assert len(judging.pending_items(run)) == 4  # the model's judgement leaves them to people
    rows = {("openai:smollm2", "v1"), ("openai:smollm2", "v2-mentor")}
    assert judging.pending_groups(run) == rows
    board = result["leaderboard"]
    assert board.judged_by == "model judges" and board.metric == "composite"
    assert [entry.items for entry in board.model_agreement] == [0]


def test_the_model_judge_task_waits_for_the_gpu_slot(
    run_id: str, prefect_api: str, ollama_server
) -> None:
    """While another holder has the only `gpu` slot the judge model makes no call; once it is
    released the task judges every item."""
    import threading
    import time

    from prefect import flow

    from benchlib.pipeline.orchestration import gpu_slot
    from tasks.benchmark import judge_with_model

    url, _ = ollama_server
    with session() as s:
        run = s.get(Run, run_id)
        run.config = run.config | {"ollama_url": url}
        s.add(run)

    @flow
    def judge_alone() -> autojudge.AutoJudgeResult:
        return judge_with_model(run_id, OLLAMA_JUDGE, no_cache=True, refresh=False)

    before = len(judge_calls(run_id))
    done: list[autojudge.AutoJudgeResult] = []
    with gpu_slot("slot-holder-of-the-test"):
        worker = threading.Thread(target=lambda: done.append(judge_alone()))
        worker.start()
        time.sleep(8)
        assert worker.is_alive() and len(judge_calls(run_id)) == before
    worker.join(timeout=600)
    [result] = done
    assert result.items == 4 and result.provider_calls == 4
    assert len(judge_calls(run_id)) == before + 4
