import os
import subprocess
import sys

from tests.conftest import ROOT


def test_optimize_loop_runs_as_is_and_prints_a_verdict(prefect_api: str) -> None:
    env = dict(os.environ, PREFECT_API_URL=prefect_api)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "optimize_loop" / "loop.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode in (0, 1), result.stderr  # 0 accept, 1 reject: both are verdicts
    assert "baseline run:" in result.stdout and "candidate run:" in result.stdout
    verdict = result.stdout.splitlines()[-1]
    assert verdict.startswith(("verdict: ACCEPT", "verdict: REJECT"))
    assert ("ACCEPT (" in verdict) == (result.returncode == 0)
