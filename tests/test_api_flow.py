"""The admin API as a dashboard and a judge use it: `benchlib api` on loopback, a real Prefect
server and the deployment served: trigger → status → awaiting judge → judged in the judge page
(headless Chromium, keyboard and mouse) → resume → leaderboard."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from sqlmodel import select

from benchlib.evaluation import judging
from benchlib.generation.providers.local import free_port
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Judgement, RunStatus
from tests.conftest import ROOT
from tests.support.browser import launch, needs_chromium
from tests.support.prefect import serve_deployment, wait_for

TOKEN = "flow-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(prefect_api: str, llm_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api-flow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ["BENCHLIB_API_URL"] = url  # the links the flow run shows (form, log, artifacts)
    with serve_deployment(prefect_api, "api-test", folder / "serve.log") as deployment:
        env = dict(
            os.environ,
            BENCHLIB_API_TOKEN=TOKEN,
            BENCHLIB_API_DEPLOYMENT=deployment,
            PREFECT_API_URL=prefect_api,
            BENCHLIB_API_ALLOWED_ENDPOINTS=f"{llm_url}/v1",
        )
        log = (folder / "api.log").open("w")
        command = [sys.executable, "-m", "benchlib.cli", "api", "--port", str(port)]
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/health")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError((folder / "api.log").read_text()) from None
                time.sleep(0.3)
        yield url
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    os.environ.pop("BENCHLIB_API_URL")


def wait_status(api: str, run_id: str, wanted: str, seen: list[str]) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        detail = httpx.get(f"{api}/api/runs/{run_id}", headers=AUTH).json()
        if not seen or seen[-1] != detail["status"]:
            seen.append(detail["status"])
        if detail["status"] == wanted:
            return detail
        assert detail["status"] != "failed", detail
        time.sleep(0.5)
    raise AssertionError(f"run still {seen[-1]}, wanted {wanted}")


@needs_chromium
def test_trigger_follow_judge_in_the_browser_resume_and_read(
    api: str, prefect_api: str, small_config: dict, tmp_path
) -> None:
    from playwright.sync_api import sync_playwright

    body = small_config | {"prompts": ["v2-mentor"], "n_candidates": 1, "judge": "human"}
    reply = httpx.post(f"{api}/api/runs", json=body, headers=AUTH, timeout=60)
    assert reply.status_code == 202, reply.text
    run_id, flow_run_id = reply.json()["run_id"], reply.json()["flow_run_id"]

    seen: list[str] = []
    detail = wait_status(api, run_id, "awaiting_judge", seen)
    assert seen[0] in ("pending", "running") and seen[-1] == "awaiting_judge"
    assert detail["progress"] == {"done": 2, "total": 2}
    # The run says awaiting_judge just before the flow suspends itself.
    wait_for(flow_run_id, lambda state: state.is_paused(), timeout_s=60)
    detail = httpx.get(f"{api}/api/runs/{run_id}", headers=AUTH).json()
    assert detail["flow_run_id"] == flow_run_id and detail["flow_run_state"] == "Suspended"
    ui = prefect_api.removesuffix("/api")
    assert detail["links"]["prefect"] == f"{ui}/runs/flow-run/{flow_run_id}"

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(f"{api}{detail['links']['judge_page']}")
        assert page.url.endswith(f"/login?next=/runs/{run_id}/judge")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/runs/{run_id}/judge")
        page.fill("#judge", "ann")
        page.click("#start")
        page.get_by_text("0 of 2 judged by ann").wait_for()
        assert page.locator(".criterion").count() == 3
        assert "relevance" in page.locator("#criteria").inner_text()
        first = page.locator("#item-id").inner_text()
        # The keyboard: digits score and move on, ← lowers the highlighted criterion.
        page.keyboard.press("4")
        page.keyboard.press("3")
        page.keyboard.press("5")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("Enter")
        page.get_by_text("1 of 2 judged by ann").wait_for()
        second = page.locator("#item-id").inner_text()
        assert second != first
        # The mouse.
        for criterion, score in (("relevance", 2), ("actionability", 5), ("tone", 3)):
            page.click(f"[data-criterion={criterion}] button[data-score='{score}']")
        page.click("#submit")
        page.get_by_text("Nothing left for you to judge").wait_for()
        assert page.locator("#progress").get_attribute("value") == "2"
        page.screenshot(path=str(tmp_path / "judge-page.png"))
        browser.close()

    with session() as s:
        recorded = s.exec(select(Judgement).where(Judgement.run_id == run_id)).all()
    queue = httpx.get(f"{api}/api/runs/{run_id}/judging", headers=AUTH).json()
    assert queue["pending"] == 0
    assert {judgement.judge for judgement in recorded} == {"ann"}
    assert sorted(tuple(sorted(j.scores.items())) for j in recorded) == [
        (("actionability", 3), ("relevance", 4), ("tone", 4)),  # keyboard: 4 3 5 ←
        (("actionability", 5), ("relevance", 2), ("tone", 3)),  # mouse
    ]

    resumed = httpx.post(f"{api}/api/runs/{run_id}/resume", json={"approve": True}, headers=AUTH)
    assert resumed.status_code == 200, resumed.text
    wait_status(api, run_id, "completed", seen)

    board = httpx.get(f"{api}/api/runs/{run_id}/leaderboard", headers=AUTH).json()
    assert board["metric"] == "composite"
    assert board["rows"][0]["judge_coverage"] == 1.0
    runs_listed = httpx.get(f"{api}/api/runs", params={"status": "completed"}, headers=AUTH)
    assert run_id in [r["id"] for r in runs_listed.json()]
    page_html = httpx.get(f"{api}/runs/{run_id}/leaderboard", headers=AUTH).text
    assert '<table id="leaderboard">' in page_html and "v2-mentor" in page_html


def _flow_run_logs(flow_run_id: str, until: str) -> list[str]:
    """The flow run's log once a line starts with `until` (logs reach the server in batches)."""
    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            found = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        lines = [log.message for log in found]
        if any(line.startswith(until) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


@needs_chromium
def test_a_judge_finishes_a_run_from_the_keyboard_alone(
    api: str, small_config: dict, tmp_path
) -> None:
    """From the link the Prefect flow run logs to approval without the mouse: three items
    judged with keys only, one commented, one changed after saving, then the run approved."""
    from playwright.sync_api import sync_playwright

    body = small_config | {"prompts": ["v2-mentor"], "judge": "human"}  # 2 scenarios × 2 = 4
    reply = httpx.post(f"{api}/api/runs", json=body, headers=AUTH, timeout=60)
    assert reply.status_code == 202, reply.text
    run_id, flow_run_id = reply.json()["run_id"], reply.json()["flow_run_id"]
    wait_status(api, run_id, "awaiting_judge", [])
    wait_for(flow_run_id, lambda state: state.is_paused(), timeout_s=60)

    # The flow run is named after the benchlib run, tagged, and its log says where to judge.
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    assert flow_run.name == run_id
    assert {"suite:tips", "model:openai:smollm2", f"benchlib-run:{run_id}"} <= set(flow_run.tags)
    link = f"{api}/runs/{run_id}/judge"
    logs = _flow_run_logs(flow_run_id, until="waiting for judges: ")
    assert any(f"benchmark run {run_id}" in line for line in logs)
    assert any("model block 1/1 done: 2/2 cells" in line for line in logs)
    assert [line for line in logs if line.startswith("waiting for judges: ")] == [
        f"waiting for judges: {link} (4 unjudged)"
    ]

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(link)
        page.keyboard.type(TOKEN)  # the token box has the focus
        page.keyboard.press("Enter")
        page.wait_for_url(link)
        page.keyboard.type("kim")  # so has the name box
        page.keyboard.press("Enter")
        page.get_by_text("0 of 4 judged by kim").wait_for()
        assert page.locator("#judge").input_value() == "kim"  # the digits went elsewhere
        # What a judge reads without hovering: instructions, calibrated examples, Save.
        assert page.get_by_text("When torn between two levels").is_visible()
        assert page.get_by_text('e.g. "Drink more water."', exact=False).is_visible()
        save = page.locator("#submit").bounding_box()
        assert save is not None and save["y"] + save["height"] <= 900
        assert "waits for judges" in page.locator("#status").inner_text()

        ids = []
        for keys, comment in (("435", ""), ("253", "too generic for a nurse"), ("333", "")):
            page.get_by_text(f"{len(ids)} of 4 judged by kim").wait_for()
            ids.append(page.locator("#item-id").inner_text())
            for key in keys:
                page.keyboard.press(key)
            if comment:
                page.keyboard.press("c")
                page.keyboard.type(comment)
                page.keyboard.press("Escape")
            page.keyboard.press("Enter")
        page.get_by_text("3 of 4 judged by kim").wait_for()
        page.get_by_text("Across judges: 1 with 0 judges, 3 with 1 judge (kim 3)").wait_for()
        # Back to the first saved item (three back from the fourth), change it, save.
        for _ in range(3):
            page.keyboard.press("b")
        assert page.locator("#item-id").inner_text() == ids[0]
        assert "saved" in page.locator("#item-state").inner_text()
        for key in "111":
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(edited) => document.getElementById('item-id').textContent !== edited", arg=ids[0]
        )
        assert page.locator("#item-id").inner_text() not in ids  # back at the one left
        # Approve with one item unjudged.
        page.keyboard.press("a")
        page.get_by_text("1 item(s) nobody has judged").wait_for()
        page.keyboard.press("Enter")
        page.get_by_text("Approved: the run continues").wait_for()
        page.screenshot(path=str(tmp_path / "judge-keyboard.png"))
        wait_status(api, run_id, "completed", [])
        page.reload()
        page.get_by_text("This run no longer waits for judges (status: completed)").wait_for()
        browser.close()

    with session() as s:
        recorded = s.exec(select(Judgement).where(Judgement.run_id == run_id)).all()
    run = runs.get_run(run_id)
    items = {item.candidate_id: item.item_id for item in judging.judge_items(run)}
    mine = {items[j.candidate_id]: j for j in recorded}
    assert {j.judge for j in recorded} == {"kim"} and set(mine) == set(ids)
    assert mine[ids[0]].scores == {"relevance": 1, "actionability": 1, "tone": 1}  # edited
    assert mine[ids[1]].scores == {"relevance": 2, "actionability": 5, "tone": 3}
    assert mine[ids[1]].comment == "too generic for a nurse"
    assert mine[ids[2]].comment == "" and mine[ids[0]].comment == ""
    assert run.status == RunStatus.completed
    assert run.leaderboard["rows"][0]["judge_coverage"] == 0.75

    # The parent flow run carries the results: leaderboard, links, report.
    wait_for(flow_run_id, lambda state: state.is_completed(), timeout_s=120)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    keys = {artifact.key for artifact in artifacts}
    assert {"leaderboard", "benchmark-links", "html-report"} <= keys
    table = next(a for a in artifacts if a.key == "leaderboard")
    assert "n_candidates" in table.data and "outputs" in table.data
    links = next(a for a in artifacts if a.key == "benchmark-links").data
    assert f"{api}/runs/{run_id}/leaderboard" in links
