"""A deployment of the benchmark flow served from a subprocess on the test Prefect server, and
waiting on its flow runs: what the judge step and the admin API tests drive."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import get_client

from benchlib.store import runs
from tests.conftest import ROOT


@contextmanager
def serve_deployment(prefect_api: str, name: str, log_path: Path) -> Iterator[str]:
    """Serve `benchmark/<name>` until the block ends; yields the deployment's full name."""
    deployment = f"benchmark/{name}"
    log = log_path.open("w")
    env = dict(os.environ, PREFECT_API_URL=prefect_api, PREFECT_RUNNER_POLL_FREQUENCY="1")
    code = f"from flows.benchmark import benchmark; benchmark.serve(name={name!r})"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(deployment)
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"not served: {log_path.read_text()}") from None
                time.sleep(0.5)
    try:
        yield deployment
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(flow_run_id: Any, check: Callable[[Any], bool], timeout_s: float = 240) -> Any:
    """The flow run's state once `check` holds; fails early if the flow run ends otherwise."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(flow_run_id).state
            if check(state):
                return state
            if state.is_final():
                raise AssertionError(f"flow run ended as {state.name}: {state.message}")
            time.sleep(0.5)
    raise AssertionError(f"timed out; last state {state.name}")


def run_of(flow_run_id: Any) -> str:
    """The benchmark run the flow run recorded."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run in runs.list_runs(limit=50):
            if run.flow_run_id == str(flow_run_id):
                return run.id
        time.sleep(0.5)
    raise AssertionError("no benchlib run for the flow run")
