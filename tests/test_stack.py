"""The local stack as users run it: `benchlib stack up`, `prefect deployment run`, the judge
step approved in the Prefect UI (headless Chromium), results in the MLflow server, `stack
down`."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.support.browser import CHROMIUM, launch
from tests.support.servers import free_port

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, llm_url: str):
    home = tmp_path_factory.mktemp("stack-home")
    env = dict(
        os.environ,
        BENCHLIB_HOME=str(home),
        BENCHLIB_PREFECT_PORT=str(free_port()),
        BENCHLIB_MLFLOW_PORT=str(free_port()),
        BENCHLIB_API_PORT=str(free_port()),
    )
    env.pop("PREFECT_API_URL", None)
    up = subprocess.run(
        [sys.executable, "-m", "benchlib.cli", "stack", "up"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    found = dict(line.split(": ", 1) for line in up.stdout.splitlines() if ": http" in line)
    env["PREFECT_API_URL"] = found["PREFECT_API_URL"]
    yield env, found
    down = subprocess.run(
        [sys.executable, "-m", "benchlib.cli", "stack", "down"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "prefect-worker" in down.stdout and "admin-api" in down.stdout
    assert "gpu-worker" in down.stdout


def flow_run_state(api: str, flow_run_id: str) -> str:
    return httpx.get(f"{api}/flow_runs/{flow_run_id}").json()["state"]["type"]


def wait_state(api: str, flow_run_id: str, wanted: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = flow_run_state(api, flow_run_id)
        if state == wanted:
            return
        assert state not in ("FAILED", "CRASHED", "CANCELLED"), state
        time.sleep(1)
    raise AssertionError(f"flow run still {state}, wanted {wanted}")


def approve_in_prefect_ui(ui: str, flow_run_id: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(f"{ui}/runs/flow-run/{flow_run_id}")
        page.get_by_role("button", name="Resume").first.click()
        form = page.locator(".p-modal__card")
        form.get_by_text("outputs were unjudged at").wait_for()
        assert "Rubric tip-v1" in form.inner_text()
        form.get_by_role("switch").first.click()  # approve
        form.locator("textarea").first.fill("ui-judge")
        form.get_by_role("button", name="Submit").click()
        form.wait_for(state="detached", timeout=30_000)
        browser.close()


def test_deployment_run_judged_in_the_prefect_ui(stack) -> None:
    env, urls = stack
    triggered = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "benchmark/default",
         "--param", "n_scenarios=1", "--param", "n_candidates=1",
         "--param", 'prompts=["v2-mentor"]', "--param", "max_tokens=48"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert triggered.returncode == 0, triggered.stderr
    flow_run_id = triggered.stdout.split("UUID: ")[1].split()[0]
    api = env["PREFECT_API_URL"]
    wait_state(api, flow_run_id, "PAUSED")

    if CHROMIUM:
        approve_in_prefect_ui(urls["Prefect UI"], flow_run_id)
    else:  # pragma: no cover - the CI installs Chromium
        listed = subprocess.run(
            [sys.executable, "-m", "benchlib.cli", "runs", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        run_id = json.loads(listed.stdout)[0]["id"]
        subprocess.run([sys.executable, "-m", "benchlib.cli", "judge", "resume", run_id],
                       cwd=ROOT, env=env, check=True)  # fmt: skip
    wait_state(api, flow_run_id, "COMPLETED")

    # Typed in a shell with PREFECT_API_URL pointing at the stack.
    listed = subprocess.run(
        [sys.executable, "-m", "benchlib", "runs", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    run = json.loads(listed.stdout)[0]
    assert run["status"] == "completed"
    client = MlflowClient(urls["MLflow UI"])
    experiment = client.get_experiment_by_name("benchlib-tips")
    parents = client.search_runs(
        [experiment.experiment_id], f"tags.`benchlib.run_id` = '{run['id']}'"
    )
    parent = next(r for r in parents if r.data.tags.get("benchlib.kind") == "benchmark")
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "cells.json",
        "leaderboard.json",
        "report.html",
        "rubric.json",
    }

    # The admin API the stack started, with the token it keeps.
    token = (Path(env["BENCHLIB_HOME"]) / "stack" / "api-token").read_text().strip()
    detail_url = f"{urls['Admin API']}/api/runs/{run['id']}"
    assert httpx.get(detail_url).status_code == 401
    detail = httpx.get(detail_url, headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["status"] == "completed" and detail["flow_run_id"] == flow_run_id
    assert detail["links"]["mlflow"] == f"{urls['MLflow UI']}/#/runs/{parent.info.run_id}"
    assert detail["links"]["prefect"] == f"{urls['Prefect UI']}/runs/flow-run/{flow_run_id}"


def test_pool_execution_through_the_stack(stack) -> None:
    """The benchmark deployment on the stack's worker fans out to the stack's GPU worker."""
    env, _ = stack
    triggered = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "benchmark/default",
         "--param", "execution=pool", "--param", "judge=skip", "--param", "n_scenarios=1",
         "--param", "n_candidates=1", "--param", 'prompts=["v1"]', "--param", "max_tokens=24"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert triggered.returncode == 0, triggered.stderr
    flow_run_id = triggered.stdout.split("UUID: ")[1].split()[0]
    wait_state(env["PREFECT_API_URL"], flow_run_id, "COMPLETED")
    shown = subprocess.run(
        [sys.executable, "-c", "import json, sys; from benchlib.store import runs; "
         "run = runs.list_runs(limit=1)[0]; "
         "print(json.dumps([run.status, [c.worker for c in runs.run_cells(run.id)]]))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    status, where = json.loads(shown.stdout)
    assert status == "completed"
    assert len(where) == 1 and where[0].startswith("gpu-") and "-stack@" in where[0]


def test_stack_down_signals_only_the_processes_it_started(tmp_path: Path, monkeypatch) -> None:
    """A pid file whose pid now names another process (the pid was reused) is dropped, and that
    process is left alone; the process the pid file does record is stopped."""
    from benchlib.pipeline import stack

    monkeypatch.setenv("BENCHLIB_HOME", str(tmp_path))
    sleep = ["sleep", "300"]
    stranger = subprocess.Popen(sleep, start_new_session=True)
    ours = subprocess.Popen(sleep, start_new_session=True)
    try:
        pids = stack.stack_dir()
        started = {
            p.pid: int(Path(f"/proc/{p.pid}/stat").read_text().rpartition(")")[2].split()[19])
            for p in (stranger, ours)
        }
        # Recorded for another process that had the same pid: its start time is not the stranger's.
        (pids / "admin-api.pid").write_text(f"{stranger.pid} {started[stranger.pid] + 10**6}")
        (pids / "mlflow-server.pid").write_text(f"{ours.pid} {started[ours.pid]}")
        (pids / "prefect-server.pid").write_text(str(stranger.pid))  # no start time: not trusted

        assert stack.down() == ["mlflow-server"]
        assert ours.wait(timeout=30) == -15  # SIGTERM
        assert stranger.poll() is None
        assert not list(pids.glob("*.pid"))
    finally:
        for process in (stranger, ours):
            process.kill()
            process.wait()
