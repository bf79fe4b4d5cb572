"""The local stack on 127.0.0.1: Prefect server, MLflow server, the `gpu` limit, the work pool,
the deployment and a worker. Logs and pids live under .benchlib/pipeline/stack/.

Started as ordinary processes (no Docker needed): this is what `prefect deployment run` and the
Prefect UI talk to on a single box.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import BaseModel

from benchlib.errors import BenchlibError
from benchlib.pipeline.orchestration import gpu_slots
from benchlib.pipeline.pool import default_worker_name, worker_command, worker_env
from benchlib.settings import PREFECT_SERVER_ENV, home

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class StackConfig(BaseModel):
    prefect_port: int = int(os.environ.get("BENCHLIB_PREFECT_PORT", "4200"))
    mlflow_port: int = int(os.environ.get("BENCHLIB_MLFLOW_PORT", "5000"))
    api_port: int = int(os.environ.get("BENCHLIB_API_PORT", "8765"))

    @property
    def prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def stack_dir() -> Path:
    path = home() / "stack"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _env(stack: StackConfig) -> dict[str, str]:
    return dict(
        os.environ,
        PREFECT_API_URL=f"{stack.prefect_url}/api",
        PREFECT_HOME=str(stack_dir() / "prefect-home"),
        **PREFECT_SERVER_ENV,
        BENCHLIB_HOME=str(home()),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        PWD=str(PROJECT),
    )


def api_token() -> str:
    """The admin API's token: made once, kept readable by this user only."""
    path = stack_dir() / "api-token"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _started_at(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), None if there is no such process.
    A pid is reused once its process is gone; pid and start time together name one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()
    # Field 3 is the state (Z: exited, not yet reaped), field 22 the start time.
    return None if fields[0] == "Z" else fields[19]


def _pid(name: str) -> int | None:
    """The pid of the stack's `name` process if that very process still runs: the pid file
    records its start time too, so a pid the system has since given to another process (after a
    reboot, say) is never taken for ours, nor signalled."""
    path = stack_dir() / f"{name}.pid"
    if not path.exists():
        return None
    pid, _, started = path.read_text().strip().partition(" ")
    if not pid.isdigit() or not started or _started_at(int(pid)) != started:
        path.unlink(missing_ok=True)
        return None
    return int(pid)


def _start(name: str, command: list[str], env: dict[str, str]) -> int:
    if pid := _pid(name):
        return pid
    # The child gets its own copy of the log's descriptor; ours is closed once it has started.
    with (stack_dir() / f"{name}.log").open("a") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    (stack_dir() / f"{name}.pid").write_text(f"{process.pid} {_started_at(process.pid)}")
    return process.pid


def _wait_http(name: str, url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if _pid(name) is None:
            break
        time.sleep(0.3)
    log = stack_dir() / f"{name}.log"
    tail = log.read_text()[-2000:] if log.exists() else ""
    raise BenchlibError(f"{name} did not come up at {url}; its log ({log}) ends:\n{tail}")


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchlibError(f"{what} failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")


def up(stack: StackConfig) -> dict[str, str]:
    env = _env(stack)
    port, mlflow_port = str(stack.prefect_port), str(stack.mlflow_port)
    _start(
        "prefect-server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
        env,
    )
    # Create the MLflow store once, before the server (concurrent first-time creation races).
    store = f"sqlite:///{home() / 'mlflow.db'}"
    _run([str(BIN / "mlflow"), "db", "upgrade", store], env, "mlflow db upgrade")
    _start(
        "mlflow-server",
        [
            *(str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", mlflow_port),
            *("--workers", "1", "--backend-store-uri", store),
            *("--artifacts-destination", str(home() / "mlartifacts")),
        ],
        env,
    )
    _wait_http("prefect-server", f"{stack.prefect_url}/api/health")
    _run([sys.executable, "-m", "deployments.setup"], env, "gpu limit and work pool set-up")
    # One deployment per call: Prefect ignores `--param` when deploying several at once.
    mlflow_param = f"mlflow_url={stack.mlflow_url}"
    deploy = [str(BIN / "prefect"), "--no-prompt", "deploy", "--name"]
    _run([*deploy, "default", "--param", mlflow_param], env, "prefect deploy (benchmark)")
    _run([*deploy, "gpu"], env, "prefect deploy (model-block)")
    _start(
        "prefect-worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", "benchlib", "--type", "process"],
        env,
    )
    _start(
        "admin-api",
        [str(BIN / "benchlib"), "api", "--port", str(stack.api_port)],
        dict(env, BENCHLIB_API_TOKEN=api_token()),
    )
    # This box's GPU slots, for `execution: pool` (other hosts join with `benchlib worker`).
    slots = gpu_slots()
    name = f"{default_worker_name()}-stack"
    _start("gpu-worker", worker_command(slots, name), worker_env(slots, name, env))
    _wait_http("mlflow-server", f"{stack.mlflow_url}/health")
    _wait_http("admin-api", f"{stack.api_url}/api/health")
    return urls(stack)


def urls(stack: StackConfig) -> dict[str, str]:
    return {
        "Prefect UI": stack.prefect_url,
        "PREFECT_API_URL": f"{stack.prefect_url}/api",
        "MLflow UI": stack.mlflow_url,
        "Admin API": stack.api_url,
        "Admin API token": str(stack_dir() / "api-token"),
        "logs": str(stack_dir()),
    }


PROCESSES = (
    "prefect-server",
    "mlflow-server",
    "prefect-worker",
    "gpu-worker",
    "admin-api",
)


def status() -> dict[str, int | None]:
    return {name: _pid(name) for name in PROCESSES}


def down() -> list[str]:
    """Stop in reverse order; the worker gets SIGINT (it ignores SIGTERM for a while)."""
    stopped = []
    for name, sig in (
        ("admin-api", signal.SIGTERM),
        ("gpu-worker", signal.SIGINT),
        ("prefect-worker", signal.SIGINT),
        ("mlflow-server", signal.SIGTERM),
        ("prefect-server", signal.SIGTERM),
    ):
        pid = _pid(name)
        if pid is None:
            continue
        started = _started_at(pid)
        os.killpg(pid, sig)
        deadline = time.monotonic() + 20
        while _started_at(pid) == started and time.monotonic() < deadline:
            time.sleep(0.2)
        if _started_at(pid) == started:
            os.killpg(pid, signal.SIGKILL)
        (stack_dir() / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
    return stopped
