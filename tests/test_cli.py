"""The `benchlib` command as a user runs it: a subprocess, its output and its exit code."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import StateType

from benchlib.store import runs
from tests.conftest import ROOT
from tests.support.cli import benchlib, config_file

# Bad input (exit 2, the message, nothing written): tests/bad_inputs.yaml, run by
# tests/test_bad_input.py, some of its cases as a subprocess too.


def test_run_prints_the_leaderboard_then_runs_and_show_find_it(
    prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "bench.yaml",
        small_config,
        "prompts: [v3-few-shot]\nn_scenarios: 2\nn_tips: 1\nmax_tokens: 24\n",
    )
    result = benchlib("run", "prompts/tips", "--config", str(config), prefect_api=prefect_api)
    assert result.returncode == 0, result.stderr
    assert "Leaderboard" in result.stdout and "v3-few-shot" in result.stdout
    run_id = result.stdout.split("run id: ")[1].split()[0]
    assert runs.get_run(run_id).n_cells == 2
    # The terminal shows the bar and the leaderboard, not Prefect's INFO lines; the UI has them.
    assert "Finished in state" not in result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        flow_run_id = LogFilterFlowRunId(any_=[runs.get_run(run_id).flow_run_id])
        logs = client.read_logs(LogFilter(flow_run_id=flow_run_id))
    assert any("Finished in state" in log.message for log in logs)

    listed = benchlib("runs")
    assert run_id in listed.stdout and "completed" in listed.stdout
    shown = benchlib("show", run_id[:17], "--candidates")
    assert shown.returncode == 0
    assert "developer-morning" in shown.stdout and "(seed 42)" in shown.stdout
    assert "local@" in shown.stdout  # where each cell ran: this process (cell.worker)
    assert benchlib("show", "no-such-run").returncode == 2


def test_read_commands_in_a_new_folder_leave_nothing_behind(tmp_path: Path) -> None:
    """`runs` and `show` in a folder benchlib never ran in: nothing to list, no database made."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("BENCHLIB_HOME", "BENCHLIB_DATABASE_URL")
    }
    listed = benchlib("runs", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "no runs yet" in listed.stdout
    assert benchlib("runs", "--json", cwd=tmp_path, env=env).stdout.strip() == "[]"
    shown = benchlib("show", "20261204", cwd=tmp_path, env=env)
    assert shown.returncode == 2
    assert "no run '20261204' (no benchlib database yet:" in " ".join(shown.stderr.split())
    assert list(tmp_path.iterdir()) == []


def _failed_flow_runs() -> int:
    failed = FlowRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED])
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=failed))
        )
    return len(flow_runs)


def test_two_runs_started_with_one_run_id_at_once_one_is_refused_before_its_flow(
    prefect_api: str, small_config: dict, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "bench.yaml",
        small_config,
        "prompts: [v1]\nn_scenarios: 1\nn_tips: 1\nmax_tokens: 16\njudge: skip\nrun_id: twins\n",
    )
    failed = _failed_flow_runs()
    command = [sys.executable, "-m", "benchlib.cli", "run", "prompts/tips", "--config", str(config)]
    env = dict(os.environ, PREFECT_API_URL=prefect_api)
    started = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in started]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = " ".join(next(err for code, err in results if code == 2).split())
    assert "run_id: a run 'twins' exists" in loser
    assert "Traceback" not in loser
    assert _failed_flow_runs() == failed  # the loser made no flow run to fail
    assert runs.get_run("twins").status == "completed"


# Commands that run no flow start without Prefect or MLflow (~2.5 s of imports): what the
# interpreter imported is read from `-X importtime`, on an empty benchlib home.
NO_FLOW_COMMANDS = [
    ["--help"],
    ["runs"],
    ["runs", "--json"],
    ["show", "no-such-run"],
    ["leaderboard", "no-such-run"],
    ["report", "no-such-run", "--html", "report.html"],
    ["compare", "no-such-run", "--baseline", "latest"],
    ["judge", "export", "no-such-run", "--out", "judge.json"],
    ["judge", "--help"],
]


@pytest.mark.parametrize("args", NO_FLOW_COMMANDS, ids=" ".join)
def test_commands_that_run_no_flow_import_neither_prefect_nor_mlflow(
    args: list[str], tmp_path: Path
) -> None:
    env = dict(os.environ, BENCHLIB_HOME=str(tmp_path / "home"))
    command = [sys.executable, "-X", "importtime", "-m", "benchlib", *args]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode in (0, 2), result.stderr[-2000:]
    imported = {
        line.rpartition("|")[2].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "benchlib" in imported
    assert not imported & {"prefect", "mlflow"}, " ".join(args)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs): a disk that is as good as full for a run."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_run_on_a_nearly_full_disk_is_refused_before_it_writes(tiny_disk: Path) -> None:
    home = tiny_disk / "home"
    env = {k: v for k, v in os.environ.items() if k != "BENCHLIB_DATABASE_URL"}
    env["BENCHLIB_HOME"] = str(home)
    result = benchlib("run", "prompts/tips", "--judge", "skip", env=env)
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert f"{home}:" in said and "MiB free on its disk" in said and "BENCHLIB_HOME" in said
    assert list(tiny_disk.iterdir()) == []  # not even the home folder
