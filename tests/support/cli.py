"""The `benchlib` command as a user runs it: a subprocess in the project folder."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def benchlib(
    *args: str, prefect_api: str | None = None, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`benchlib ARGS` in `cwd`, with this process's environment (or `env`)."""
    env = dict(os.environ if env is None else env)
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    command = [sys.executable, "-m", "benchlib.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def config_file(path: Path, small_config: dict, extra: str) -> Path:
    """A YAML config for the session's llama.cpp server, plus `extra` YAML lines as written."""
    path.write_text(
        f"models: [openai:smollm2]\nopenai_base_url: {small_config['openai_base_url']}\n{extra}"
    )
    return path
