"""The `benchlib` command as a user runs it: a subprocess in the project folder."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def benchlib(*args: str, prefect_api: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    command = [sys.executable, "-m", "benchlib.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
