"""The loop an optimisation agent runs, through the CLI and JSON only (no benchlib imports):

    baseline run -> change a prompt version -> rerun -> read the eval report -> verdict

Runs on the embedded model in a few minutes:  .venv/bin/python examples/optimize_loop/loop.py
It works on a copy of prompts/tips, so the suite in the repository is never modified.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHLIB = [sys.executable, "-m", "benchlib.cli"]
GRID = ["--prompt", "v1", "--n-scenarios", "4", "--n-candidates", "2", "--max-tokens", "96"]


def benchlib(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCHLIB, *args], cwd=ROOT, capture_output=True, text=True)


def run_benchmark(suite: Path, experiment: str) -> str:
    result = benchlib("run", str(suite), "--experiment", experiment, *GRID)
    if result.returncode != 0:
        sys.exit(f"benchmark failed:\n{result.stderr}")
    newest = json.loads(benchlib("runs", "--limit", "1", "--json").stdout)[0]
    return newest["id"]


def main() -> int:
    experiment = f"optimize-loop-{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "tips"
        shutil.copytree(ROOT / "prompts" / "tips", suite)

        baseline = run_benchmark(suite, experiment)
        print(f"baseline run: {baseline}")

        # The "agent" proposes a change to prompt version v1: ask for JSON in fewer words.
        version = suite / "versions" / "v1.yaml"
        version.write_text(
            version.read_text().replace(
                "Give exactly one short, actionable productivity tip for right now.",
                "Give exactly one actionable productivity tip for right now, in under 20 words.",
            )
        )
        candidate = run_benchmark(suite, experiment)
        print(f"candidate run: {candidate}")

        report_file = Path(tmp) / "eval-report.json"
        verdict = benchlib(
            "compare",
            candidate,
            "--baseline",
            baseline,
            "--allow-prompt-change",
            "--eval-report",
            str(report_file),
        )
        if verdict.returncode == 2:
            sys.exit(f"compare refused its input:\n{verdict.stderr}")
        report = json.loads(report_file.read_text())

    summary = report["summary"]
    print(
        f"verdict: {'ACCEPT' if report['is_acceptable'] else 'REJECT'} "
        f"(aggregate_score={report['aggregate_score']}, "
        f"mean quality delta {summary['mean_quality_delta']} "
        f"[{summary['ci_low']}, {summary['ci_high']}], "
        f"{summary['improved']} improved, {summary['regressed']} regressed, "
        f"{summary['broken']} broken)"
    )
    return verdict.returncode


if __name__ == "__main__":
    sys.exit(main())
