"""A GPU work pool on one machine, for real: a `prefect server start` of its own (every server
service runs, the crash automation and lease expiry included), process workers started with
`benchlib worker`, and a way to kill a worker the way a host dies (its whole process tree)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import httpx
from prefect import get_client
from prefect.client.schemas.objects import WorkerStatus
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker

from benchlib.generation.providers.local import embedded_model_path, free_port
from benchlib.pipeline.pool import GPU_POOL
from tests.conftest import ROOT, TIPS

BIN = Path(sys.executable).parent
MODELS = ["m1", "m2", "m3", "m4"]


def alias_grid(n_scenarios: int, execution: str = "pool", max_tokens: int = 24) -> dict:
    """4 models that are aliases of the embedded GGUF (each block loads its own llama.cpp
    server, as a GPU host would) × 1 prompt version × n scenarios × 1 candidate, no cache."""
    path = str(embedded_model_path())
    return {
        "suite": str(TIPS),
        "models": [f"local:{alias}" for alias in MODELS],
        "local_models": {alias: path for alias in MODELS},
        "prompts": ["v1"],
        "n_scenarios": n_scenarios,
        "n_candidates": 1,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "no_cache": True,
        "judge": "skip",
        "execution": execution,
    }


def _stop(process: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def prefect_server(folder: Path) -> Iterator[str]:
    """`prefect server start` on a free port with its own home; yields its API URL."""
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(folder / "prefect-home"))
    env.pop("PREFECT_API_URL", None)
    log = (folder / "prefect-server.log").open("w")
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=folder)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process, signal.SIGTERM)
            raise RuntimeError(f"Prefect server did not start: {(folder / 'prefect-server.log')}")
        time.sleep(0.5)
    try:
        yield api
    finally:
        # Deliver this process's queued events and logs while the server still answers: a
        # Prefect client worker left with a dead server hangs the next harness's drain.
        EventsWorker.drain_all(timeout=30)
        APILogWorker.drain_all(timeout=30)
        _stop(process, signal.SIGTERM)


def project_command(command: list[str], api: str) -> None:
    """Run a set-up command in the project folder against `api` (as a user would)."""
    env = dict(os.environ, PREFECT_API_URL=api, PWD=str(ROOT))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def prepare_pool(api: str, total_slots: int) -> None:
    """The operator's two steps: limits, pools and crash automation; then the deployment."""
    project_command([sys.executable, "-m", "deployments.setup", "--slots", str(total_slots)], api)
    project_command([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "gpu"], api)


class Worker:
    """`benchlib worker --slots N --name NAME` as a subprocess (it execs the Prefect worker)."""

    def __init__(self, api: str, name: str, slots: int, folder: Path):
        self.name = name
        # Two workers share this machine's cores: one llama.cpp thread per loaded model.
        env = dict(
            os.environ,
            PREFECT_API_URL=api,
            PREFECT_WORKER_QUERY_SECONDS="1",
            BENCHLIB_LLAMA_THREADS="1",
        )
        command = [sys.executable, "-m", "benchlib.cli", "worker", "--slots", str(slots)]
        self.log_path = folder / f"worker-{name}.log"
        self.process = subprocess.Popen(
            [*command, "--name", name],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_host(self) -> list[int]:
        """SIGKILL the worker and every process under it (its flow runs and their model
        servers), as when the host goes down; returns the pids killed."""
        pids = [self.process.pid, *_descendants(self.process.pid)]
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        return pids

    def stop(self) -> None:
        """SIGINT: the worker ignores SIGTERM for a while."""
        _stop(self.process)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextmanager
def workers(api: str, names: list[str], folder: Path, slots: int = 1) -> Iterator[list[Worker]]:
    """Workers on the GPU pool, each with `slots`; yields once every one is online."""
    started = [Worker(api, name, slots, folder) for name in names]
    try:
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:
                online = {
                    w.name
                    for w in client.read_workers_for_work_pool(GPU_POOL)
                    if w.status == WorkerStatus.ONLINE
                }
                if set(names) <= online:
                    break
                if time.monotonic() > deadline:
                    logs = "\n".join(w.log_path.read_text()[-1500:] for w in started)
                    raise RuntimeError(f"workers not online ({online}):\n{logs}")
                time.sleep(0.5)
        yield started
    finally:
        for worker in started:
            worker.stop()


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """How many intervals were open at once, at most (ends before starts at equal times)."""
    edges = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most
