"""The fork server as the console script meets it: a real server process, `python -m benchlib`
as the caller, real runs against the embedded model and a Prefect server."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

import benchlib.forkserver
from benchlib import runs
from tests.conftest import ROOT
from tests.support.cli import config_file


@pytest.fixture(scope="module")
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fork server for the session's benchlib home, started without PREFECT_API_URL (the
    callers bring theirs); yields its log."""
    log = tmp_path_factory.mktemp("forkserver") / "forkserver.log"
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        benchlib.forkserver.command(benchlib.forkserver.socket_file()),
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        # as in a shell script's background job: the forked commands must still take Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    wait_for_line(log, "ready", server)
    yield log
    server.terminate()
    server.wait(30)
    assert not benchlib.forkserver.socket_file().exists()


def wait_for_line(log: Path, text: str, server: subprocess.Popen | None = None, n: int = 1) -> None:
    deadline = time.monotonic() + 120
    while log.read_text().count(text) < n:
        assert time.monotonic() < deadline, log.read_text()
        assert server is None or server.poll() is None, log.read_text()
        time.sleep(0.1)


def caller(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchlib", *args]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        caller(*args), cwd=ROOT, env=dict(os.environ, **env), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def forked_pids(log: Path, command: str) -> list[int]:
    return [
        int(line.split()[1].rstrip(":"))
        for line in log.read_text().splitlines()
        if line.startswith("pid ") and line.endswith(f"benchlib {command}")
    ]


def test_a_run_is_a_forked_copy_with_the_callers_streams_environment_and_status(
    forkserver: Path, prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    config = config_file(tmp_path / "bench.yaml", small_config, "prompts: [v1]\nn_scenarios: 1\n")
    args = ["run", "prompts/tips", "--config", str(config), "--judge", "skip"]
    done = run(args, PREFECT_API_URL=prefect_api)
    assert done.returncode == 0, done.stderr
    assert "Leaderboard" in done.stdout
    [pid] = forked_pids(forkserver, " ".join(args))
    assert f"pid {pid}: exit 0" in forkserver.read_text()
    # The cells were generated in the forked process, and its flow run is on the caller's
    # Prefect server: the server itself has no PREFECT_API_URL.
    run_id = done.stdout.split("run id: ")[1].split()[0]
    assert {cell.worker.rsplit(":", 1)[1] for cell in runs.run_cells(run_id)} == {str(pid)}
    flow_run = httpx.get(f"{prefect_api}/flow_runs/{runs.get_run(run_id).flow_run_id}")
    assert flow_run.json()["state"]["type"] == "COMPLETED"

    bad = run(["run", "prompts/no-such-suite"])
    assert bad.returncode == 2
    assert "prompts/no-such-suite" in bad.stderr and "suite.yaml" in bad.stderr
    [pid] = forked_pids(forkserver, "run prompts/no-such-suite")
    assert f"pid {pid}: exit 2" in forkserver.read_text()


def test_a_terminal_gets_a_terminals_output(forkserver: Path) -> None:
    """The server's own stdout is a log file; the command's is the caller's terminal."""
    output = pexpect.run(
        " ".join(caller("runs")), cwd=str(ROOT), env=dict(os.environ, TERM="xterm-256color")
    )
    assert forked_pids(forkserver, "runs")
    assert b"\x1b[" in output  # colour: rich saw a terminal


def test_ctrl_c_reaches_the_forked_command(
    forkserver: Path, prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "bench.yaml", small_config, "n_scenarios: 6\nmax_tokens: 200\nno_cache: true\n"
    )
    args = ["run", "prompts/tips", "--config", str(config), "--judge", "skip"]
    command = subprocess.Popen(
        caller(*args), cwd=ROOT, env=dict(os.environ, PREFECT_API_URL=prefect_api),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as typed at a terminal, even when the tests run as a background job (SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        wait_for_line(forkserver, f"benchlib {' '.join(args)}")
        [pid] = forked_pids(forkserver, " ".join(args))
        time.sleep(5)  # into the cells
        command.send_signal(signal.SIGINT)
        _, stderr = command.communicate(timeout=120)
    finally:
        command.kill()  # on a failure: the forked command then hangs up too
    assert command.returncode == 130, stderr
    wait_for_line(forkserver, f"pid {pid}: exit 130")


def test_a_command_the_server_cannot_stand_in_for_runs_in_the_callers_process(
    forkserver: Path,
) -> None:
    before = forkserver.read_text()
    declined = run(["runs"], PYTHONWARNINGS="ignore")
    assert declined.returncode == 0 and "run" in declined.stdout
    assert "declined ['runs']: different PYTHON* environment variables" in forkserver.read_text()
    assert run(["runs"], BENCHLIB_NO_FORKSERVER="1").returncode == 0
    after = forkserver.read_text()[len(before) :]
    assert "pid " not in after


def test_a_library_changed_on_disk_restarts_the_server(forkserver: Path) -> None:
    library = Path(httpx.__file__)
    mtime = library.stat().st_mtime_ns
    try:
        os.utime(library, ns=(mtime, mtime + 1_000_000_000))
        assert run(["runs"]).returncode == 0
        assert "declined ['runs']: a preloaded module changed on disk" in forkserver.read_text()
        wait_for_line(forkserver, "ready", n=2)
        assert run(["runs", "--json"]).returncode == 0
        assert forked_pids(forkserver, "runs --json")
    finally:
        os.utime(library, ns=(mtime, mtime))
