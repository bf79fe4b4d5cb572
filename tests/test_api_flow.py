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
from sqlmodel import select

from benchlib.db import session
from benchlib.providers.local import free_port
from benchlib.records import Judgement
from tests.conftest import ROOT
from tests.support.browser import launch, needs_chromium
from tests.support.prefect import serve_deployment, wait_for

TOKEN = "flow-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(prefect_api: str, llm_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api-flow")
    with serve_deployment(prefect_api, "api-test", folder / "serve.log") as deployment:
        port = free_port()
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
        url = f"http://127.0.0.1:{port}"
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
