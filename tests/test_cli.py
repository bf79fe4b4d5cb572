"""The `benchlib` command as a user runs it: a subprocess, its output and its exit code."""

from pathlib import Path

import pytest

from benchlib import runs
from tests.support.cli import benchlib, config_file


def run_count() -> int:
    return len(runs.list_runs(limit=10_000))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "bogus:x"], "unknown provider 'bogus'"),
        (["--model", "smollm2"], "expected 'provider:model'"),
        (["--temperature", "9"], "temperature: Input should be less than or equal to 2"),
        (["--n-candidates", "0"], "n_candidates"),
        (["--prompt", "v9"], "unknown prompt version(s) ['v9']"),
        (["--local-model", "nopath"], "expected ALIAS=PATH"),
        (["--model", "local:nope"], "local:nope: unknown local model"),
        (
            ["--model", "openai:m", "--openai-base-url", "http://127.0.0.1:9/v1"],
            "unreachable",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(args, expected) -> None:
    before = run_count()
    result = benchlib("run", "prompts/tips", *args)
    assert result.returncode == 2, result.stderr
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert run_count() == before


def test_missing_config_file_and_suite_folder(tmp_path: Path) -> None:
    result = benchlib("run", "prompts/tips", "--config", str(tmp_path / "none.yaml"))
    assert result.returncode == 2 and "none.yaml: config file not found" in result.stderr
    result = benchlib("run", str(tmp_path))
    assert result.returncode == 2 and "not a suite folder (no suite.yaml)" in result.stderr


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

    listed = benchlib("runs")
    assert run_id in listed.stdout and "completed" in listed.stdout
    shown = benchlib("show", run_id[:17], "--candidates")
    assert shown.returncode == 0
    assert "developer-morning" in shown.stdout and "(seed 42)" in shown.stdout
    assert benchlib("show", "no-such-run").returncode == 2
