"""The `benchlib` command as a user runs it: a subprocess in the project folder."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def benchlib(
    *args: str, prefect_api: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = dict(os.environ) | (env or {})
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    command = [sys.executable, "-m", "benchlib.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def config_file(path: Path, small_config: dict, extra: str) -> Path:
    """A YAML config for the session's llama.cpp server, plus `extra` YAML lines as written."""
    path.write_text(
        f"models: [openai:smollm2]\nopenai_base_url: {small_config['openai_base_url']}\n{extra}"
    )
    return path
