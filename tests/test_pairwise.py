"""Pairwise judging on real outputs of the embedded model: the pairs (even, blind), the file
round trip, the terminal session, and Bradley–Terry on synthetic judges whose true preference
is known, which the fitted order must recover."""

import json
import math
import os
import random
import sys
from collections import Counter

import httpx
import numpy as np
import pexpect
import pytest

from benchlib.api.app import create_app
from benchlib.api.settings import ApiSettings
from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.evaluation import pairwise
from benchlib.store import runs
from flows.benchmark import benchmark
from tests.conftest import ROOT
from tests.support.browser import launch, needs_chromium
from tests.support.cli import benchlib
from tests.support.servers import serve_app

PROMPTS = ["v1", "v2-mentor", "v3-few-shot"]
TOKEN = "pairs-test-token"
# The synthetic judges' truth: log-odds strengths per prompt version (one model).
TRUE = {"v3-few-shot": 1.5, "v1": 0.0, "v2-mentor": -1.5}


@pytest.fixture(scope="module")
def paired_run(prefect_api: str, small_config: dict) -> str:
    values = small_config | {
        "prompts": PROMPTS,
        "n_scenarios": 6,
        "n_candidates": 1,
        "max_tokens": 48,
        "judge": "human",
        "judge_mode": "pairwise",
    }
    return benchmark(**build_config(values).model_dump())["run_id"]


def test_every_row_is_in_two_pairs_per_scenario_and_nothing_names_it(paired_run: str) -> None:
    run = runs.get_run(paired_run)
    pairs = pairwise.pairs_of(run)
    assert [p.pair_id for p in pairs] == [p.pair_id for p in pairwise.pairs_of(run)]  # stable
    assert len(pairs) == 6 * 3  # a 3-cycle per scenario
    per_scenario = Counter((p.scenario_id, side.prompt) for p in pairs for side in (p.a, p.b))
    assert set(per_scenario.values()) == {2}
    assert all(p.a.prompt != p.b.prompt for p in pairs)
    # The sides are shuffled: no prompt version is always A.
    assert len({p.a.prompt for p in pairs}) == 3
    text = pairwise.export_file(run).model_dump_json()
    for identity in ("smollm2", "openai", "v2-mentor", "few-shot", "candidate"):
        assert identity not in text


def _synthetic_choice(rng: random.Random, pair: pairwise.Pair) -> str:
    """A judge who prefers by TRUE (Bradley–Terry), and calls one pair in ten a tie."""
    if rng.random() < 0.1:
        return "tie"
    p_a = 1 / (1 + math.exp(-(TRUE[pair.a.prompt] - TRUE[pair.b.prompt])))
    return "a" if rng.random() < p_a else "b"


def test_synthetic_judges_with_a_known_preference_are_recovered(
    paired_run: str, tmp_path, prefect_api: str
) -> None:
    run = runs.get_run(paired_run)
    truth = {pair.pair_id: pair for pair in pairwise.pairs_of(run)}  # the oracle, not the judge
    for seed, judge in enumerate(("judge-1", "judge-2", "judge-3")):
        rng = random.Random(seed)
        exported = tmp_path / f"{judge}.json"
        result = benchlib(
            "judge", "export", run.id, "--out", str(exported), prefect_api=prefect_api
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(exported.read_text())
        assert data["format"] == "benchlib-pairs-v1"
        data["judge"] = judge
        for item in data["items"]:
            item["choice"] = _synthetic_choice(rng, truth[item["pair_id"]])
        exported.write_text(json.dumps(data))
        applied = benchlib("judge", "apply", str(exported), prefect_api=prefect_api)
        assert applied.returncode == 0, applied.stderr
        assert "18 added" in applied.stdout
        again = pairwise.apply_file(exported.read_text(), "again")[1]
        assert again == {"added": 0, "updated": 0, "unchanged": 18}

    found = pairwise.board(run)
    assert [row.prompt for row in found.rows] == sorted(TRUE, key=lambda p: -TRUE[p])
    assert found.judgements == 54 and found.scenarios == 6 and not found.thin
    leader, middle, last = found.rows
    assert leader.ci_low > last.ci_high  # the extremes are told apart
    assert not last.tied_with_leader
    assert leader.win_rate > middle.win_rate > last.win_rate
    assert all(row.comparisons == 36 for row in found.rows)  # 2 per scenario × 6 × 3 judges
    assert abs(sum(row.strength for row in found.rows)) < 1e-9
    assert all(row.ci_low <= row.strength <= row.ci_high for row in found.rows)
    assert found.agreement.pairs_judged_twice == 18
    assert 0.3 < found.agreement.percent < 1.0 and found.agreement.alpha is not None

    # The terminal leaderboard shows the pairwise table after the rubric one.
    shown = benchlib("leaderboard", run.id, prefect_api=prefect_api)
    assert shown.returncode == 0, shown.stderr
    assert "Pairwise · 54 judgements over 6 scenarios" in " ".join(shown.stdout.split())
    assert "judges agree on" in shown.stdout


def test_bad_pairs_files_name_the_problem_and_apply_nothing(paired_run: str) -> None:
    run = runs.get_run(paired_run)
    data = json.loads(pairwise.export_file(run).model_dump_json())
    data["judge"] = "bad"
    data["items"][0]["choice"] = "a"
    data["items"][1]["choice"] = "left"
    with pytest.raises(BenchlibError, match=r"items\.1\.choice"):
        pairwise.apply_file(json.dumps(data), "pairs.json")
    data["items"][1]["choice"] = "b"
    data["items"][2]["pair_id"] = "pnope"
    data["items"][2]["choice"] = "tie"
    with pytest.raises(BenchlibError, match="pair pnope: unknown pair"):
        pairwise.apply_file(json.dumps(data), "pairs.json")
    assert not [j for j in pairwise.pair_judgements_of(run.id) if j.judge == "bad"]


def test_terminal_pairs_session_as_a_person_would(paired_run: str) -> None:
    env = dict(os.environ, COLUMNS="160", TERM="dumb")
    command = f"{sys.executable} -m benchlib.cli judge {paired_run} --judge tess"
    child = pexpect.spawn(command, cwd=str(ROOT), env=env, encoding="utf-8", timeout=120)
    child.expect("0/18 done")
    child.expect("pair 1/18")
    child.expect(r"\[a/b/t/s/k/q\]")
    child.sendline("b")
    child.expect("comment")
    child.sendline("A rambles")
    child.expect("pair 2/18")
    child.expect(r"\[a/b/t/s/k/q\]")
    child.sendline("t")
    child.expect("comment")
    child.sendline("")
    child.expect("pair 3/18")
    child.expect(r"\[a/b/t/s/k/q\]")
    child.sendline("q")
    child.expect("Stopped; 2/18 judged")
    child.expect(pexpect.EOF)
    mine = sorted(
        (j for j in pairwise.pair_judgements_of(paired_run) if j.judge == "tess"),
        key=lambda j: j.id,
    )
    assert [(j.choice, j.comment) for j in mine] == [("b", "A rambles"), ("tie", "")]


def test_the_fit_recovers_known_strengths_from_simulated_choices() -> None:
    true = np.array([1.2, 0.4, 0.0, -1.6])
    rng = np.random.default_rng(3)
    first, second = rng.integers(0, 4, (2, 3000))
    keep = first != second
    first, second = first[keep], second[keep]
    won = rng.random(first.size) < 1 / (1 + np.exp(-(true[first] - true[second])))
    winners, losers = np.where(won, first, second), np.where(won, second, first)
    ones = np.ones(first.size)
    fitted = pairwise.fit_strengths(winners, losers, ones, ones, 4)
    assert np.abs(fitted - (true - true.mean())).max() < 0.15
    # A row that never lost stays finite (the prior), and ties pull strengths together.
    assert np.isfinite(
        pairwise.fit_strengths(np.zeros(5, int), np.ones(5, int), *[np.ones(5)] * 2, 2)
    ).all()
    tied = pairwise.fit_strengths(np.zeros(5, int), np.ones(5, int), np.full(5, 0.5), np.ones(5), 2)
    assert np.abs(tied).max() < 1e-6


@needs_chromium
def test_pairs_on_the_judge_page_and_over_the_api(paired_run: str) -> None:
    """The judge page in pairwise mode, from the keyboard: A, then a tie with a comment, then
    back to change the first; the API serves the queue, records, and the board."""
    from playwright.sync_api import sync_playwright

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve_app(create_app(ApiSettings(token=TOKEN)), "/api/health") as api:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{api}/login?next=/runs/{paired_run}/judge")
            page.keyboard.type(TOKEN)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{api}/runs/{paired_run}/judge")
            page.keyboard.type("pia")
            page.keyboard.press("Enter")
            page.get_by_text("0 of 18 judged by pia").wait_for()
            assert "Models and prompts are hidden" in page.locator("#instructions").inner_text()
            first = page.locator("#item-id").inner_text()
            page.keyboard.press("1")
            page.keyboard.press("Enter")
            page.get_by_text("1 of 18 judged by pia").wait_for()
            second = page.locator("#item-id").inner_text()
            page.keyboard.press("0")
            page.keyboard.press("c")
            page.keyboard.type("both vague")
            page.keyboard.press("Enter")  # saves from the comment box
            page.get_by_text("2 of 18 judged by pia").wait_for()
            page.keyboard.press("b")
            page.keyboard.press("b")
            assert page.locator("#item-id").inner_text() == first
            page.keyboard.press("2")
            page.keyboard.press("Enter")
            page.get_by_text("2 of 18 judged by pia").wait_for()
            page.wait_for_function(
                "(first) => document.getElementById('item-id').textContent !== first", arg=first
            )
            browser.close()
        mine = {j.pair_id: j for j in pairwise.pair_judgements_of(paired_run) if j.judge == "pia"}
        assert {k: (j.choice, j.comment) for k, j in mine.items()} == {
            first: ("b", ""),
            second: ("tie", "both vague"),
        }
        queue = httpx.get(
            f"{api}/api/runs/{paired_run}/pairs", params={"judge": "pia"}, headers=auth
        )
        assert queue.status_code == 200 and queue.json()["pending"] == 16
        assert [item["pair_id"] for item in queue.json()["yours"]] == [first, second]
        bad = httpx.post(
            f"{api}/api/runs/{paired_run}/pair-judgements",
            json={"judge": "pia", "items": [{"pair_id": first, "choice": "left"}]},
            headers=auth,
        )
        assert bad.status_code == 422 and "choice" in bad.json()["detail"]
        board = httpx.get(f"{api}/api/runs/{paired_run}/pairwise", headers=auth).json()
        assert board["rows"][0]["prompt"] == "v3-few-shot"
        assert board["method"].startswith("Bradley–Terry")
