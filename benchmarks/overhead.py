"""Harness overhead on the fixed peer grid (../shared/peer-grid: 2 prompts × 12 scenarios, 1
model, temperature 0, max_tokens 64), against one llama.cpp server with its prompt cache off:

  raw       a plain httpx loop, the physical floor
  cold      `benchlib run` with no Prefect server running (ephemeral server start included)
  stack     `benchlib run` against an already running `prefect server start`
  warm      the same grid again with the response cache (zero provider calls expected)

Runs alternate, `--repeats` times; prints a table and writes benchmarks/results/overhead.json.
    .venv/bin/python benchmarks/overhead.py [--repeats 3] [--grid ../shared/peer-grid]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from benchlib.providers.local import LlamaServer, embedded_model_path, free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_healthy(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def write_suite(grid: Path, folder: Path) -> None:
    """The peer grid as a benchlib suite: same messages, same scenarios."""
    prompts = json.loads((grid / "prompts.json").read_text())
    scenarios = json.loads((grid / "scenarios.json").read_text())
    (folder / "versions").mkdir(parents=True)
    (folder / "suite.yaml").write_text("name: peer-grid\nscorers: [format_ok, overlong]\n")
    (folder / "schema.json").write_text('{"type": "object"}')
    shutil.copy(ROOT / "prompts" / "tips" / "rubric.yaml", folder / "rubric.yaml")
    (folder / "scenarios.yaml").write_text(yaml.safe_dump({"scenarios": scenarios}))
    for name, messages in prompts.items():
        parts = {m["role"]: m["content"] for m in messages}
        version = {"system": parts.get("system", ""), "user": parts["user"]}
        (folder / "versions" / f"{name}.yaml").write_text(yaml.safe_dump(version))


def raw_loop(grid: Path, url: str) -> float:
    prompts = json.loads((grid / "prompts.json").read_text())
    scenarios = json.loads((grid / "scenarios.json").read_text())
    params = json.loads((grid / "params.json").read_text())
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        for messages in prompts.values():
            for scenario in scenarios:
                rendered = []
                for m in messages:
                    text = m["content"]
                    for key, value in scenario.items():
                        text = text.replace("{{" + key + "}}", str(value))
                    rendered.append({"role": m["role"], "content": text})
                body = {
                    "model": "smollm2",
                    "messages": rendered,
                    "temperature": params["temperature"],
                    "max_tokens": params["max_tokens"],
                }
                client.post("/v1/chat/completions", json=body).raise_for_status()
    return time.perf_counter() - start


def benchlib_run(suite: Path, url: str, env: dict[str, str], cache: bool) -> float:
    command = [
        *(sys.executable, "-m", "benchlib.cli", "run", str(suite)),
        *("--model", "openai:smollm2", "--openai-base-url", f"{url}/v1"),
        *("--temperature", "0", "--max-tokens", "64", "--n-candidates", "1"),
        *("--judge", "skip", "--experiment", "overhead"),
        *(() if cache else ("--no-cache",)),
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid", type=Path, default=ROOT.parent / "shared" / "peer-grid")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="benchlib-overhead-"))
    suite = work / "peer-grid"
    write_suite(args.grid, suite)
    base_env = dict(os.environ, BENCHLIB_HOME=str(work / "home"))
    base_env.pop("PREFECT_API_URL", None)
    base_env["PREFECT_HOME"] = str(work / "prefect-home")
    llama = LlamaServer(embedded_model_path(), "smollm2", threads=2, cache_prompt=False)
    url = llama.url

    port = free_port()
    prefect_env = dict(base_env, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    prefect = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--port", str(port)],
        env=prefect_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stack_env = dict(base_env, PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    wait_healthy(f"http://127.0.0.1:{port}/api/health")

    times: dict[str, list[float]] = {"raw": [], "cold": [], "stack": [], "warm": []}
    try:
        benchlib_run(suite, url, stack_env, cache=True)  # fills the cache for "warm"
        for _ in range(args.repeats):
            times["raw"].append(raw_loop(args.grid, url))
            times["cold"].append(benchlib_run(suite, url, base_env, cache=False))
            times["stack"].append(benchlib_run(suite, url, stack_env, cache=False))
            times["warm"].append(benchlib_run(suite, url, stack_env, cache=True))
    finally:
        prefect.terminate()
        llama.stop()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{'harness':<8} {'median s':>9} {'÷ raw':>7}   runs")
    for name, value in median.items():
        runs = " ".join(f"{v:.1f}" for v in times[name])
        print(f"{name:<8} {value:>9.1f} {value / median['raw']:>7.2f}   {runs}")
    print(f"warm rerun = {median['warm'] / median['cold']:.1%} of the cold run")
    out = ROOT / "benchmarks" / "results" / "overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"times": times, "median": median}, indent=2))


if __name__ == "__main__":
    main()
