"""Start-up time of the `benchlib` command: `--help`, `runs`, and a `run`'s first request.

Each tree (a checkout of the project, e.g. one made with `git worktree add /tmp/old af144aa`) is
measured with this interpreter, its own `benchlib` package first on the path, as a process of its
own timed from here:

  --help    process start → exit
  runs      process start → exit, on a home that holds the runs made below
  run       process start → the first chat request at a loopback OpenAI-compatible server that
            answers at once (1 cell, against a running `prefect server start`: the Prefect
            server's own start is not the command's)

With `--forkserver`, a tree that has the old fork server (benchlib/forkserver.py, removed by
issue 22) is measured a second time with its fork server running, as `benchlib stack up` ran it.
Trees alternate, `--repeats` times; prints medians and writes benchmarks/results/startup.json.

    .venv/bin/python benchmarks/startup.py --tree before=/tmp/old --tree after=. [--repeats 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.overhead import prefect_server  # noqa: E402

ANSWER = {
    "object": "chat.completion",
    "model": "instant",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"tip": "One task on a card first."}'},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 40, "completion_tokens": 16, "total_tokens": 56},
}


class InstantServer:
    """Answers chat requests at once and notes when the first one since `arm()` arrived."""

    def __init__(self) -> None:
        self.first_at: float | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "instant", "object": "model"}]})

            def do_POST(self) -> None:
                server.first_at = server.first_at or time.time()
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(ANSWER)

            def _send(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def arm(self) -> None:
        self.first_at = None


@contextmanager
def forkserver(tree: Path, env: dict[str, str]) -> Iterator[None]:
    """The old tree's fork server for `env`'s benchlib home, until the block ends."""
    sock = Path(env["BENCHLIB_HOME"]) / "stack" / "forkserver.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "benchlib.forkserver", str(sock)], cwd=tree, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not sock.exists():
            if process.poll() is not None:
                raise RuntimeError(f"{tree}: the fork server did not start")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(30)


def timed(tree: Path, env: dict[str, str], args: list[str]) -> tuple[float, float]:
    """(start, seconds to exit) of `python -m benchlib ARGS` run in `tree`."""
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "benchlib", *args], cwd=tree, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: benchlib {' '.join(args)}: {result.stderr[-1500:]}")
    return start, time.time() - start


def measure(tree: Path, env: dict[str, str], model: InstantServer, seed: int) -> dict[str, float]:
    help_s = timed(tree, env, ["--help"])[1]
    model.arm()
    run = ["run", "prompts/tips", "--model", "openai:instant", "--openai-base-url", model.url]
    run += ["--prompt", "v1", "--n-scenarios", "1", "--n-candidates", "1", "--judge", "skip"]
    start = timed(tree, env, [*run, "--seed", str(seed)])[0]
    assert model.first_at is not None, f"{tree}: the run made no request"
    runs_s = timed(tree, env, ["runs"])[1]
    return {"help_s": help_s, "runs_s": runs_s, "run_first_request_s": model.first_at - start}


def commit(tree: Path) -> str:
    head = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(head, cwd=tree, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="LABEL=PATH")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--forkserver", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/startup.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="benchlib-startup-"))
    base = dict(os.environ, PREFECT_HOME=str(work / "prefect"), PREFECT_LOGGING_LEVEL="WARNING")
    base.pop("PREFECT_API_URL", None)
    setups: list[tuple[str, Path, bool]] = []
    for item in args.tree:
        label, _, path = item.partition("=")
        tree = Path(path).resolve()
        setups.append((label, tree, False))
        if args.forkserver and (tree / "benchlib" / "forkserver.py").exists():
            setups.append((f"{label}, fork server running", tree, True))

    commits = {label: commit(tree) for label, tree, _ in setups}  # before the trees can move
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in setups}
    model = InstantServer()
    with prefect_server(base) as api, ExitStack() as servers:
        envs = {}
        for label, tree, forks in setups:
            home = work / f"home-{len(envs)}"
            env = dict(base, PREFECT_API_URL=api, BENCHLIB_HOME=str(home), PYTHONPATH=str(tree))
            if not forks:  # the old console script asks a fork server first unless told not to
                env["BENCHLIB_NO_FORKSERVER"] = "1"
            else:
                (home / "stack").mkdir(parents=True)
                servers.enter_context(forkserver(tree, env))
            envs[label] = env
        for repeat in range(args.repeats):
            for label, tree, _ in setups:
                figures = measure(tree, envs[label], model, seed=1000 + repeat)
                results[label].append(figures)
                print(label, {k: round(v, 2) for k, v in figures.items()}, flush=True)

    medians = {
        label: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for label, rows in results.items()
    }
    print(f"\n{'tree':<32} {'--help s':>9} {'runs s':>8} {'run → 1st request s':>20}")
    for label, m in medians.items():
        first = m["run_first_request_s"]
        print(f"{label:<32} {m['help_s']:>9.2f} {m['runs_s']:>8.2f} {first:>20.2f}")
    args.out.write_text(
        json.dumps(
            {
                "what": "benchlib start-up: --help, runs, run → first request (running Prefect "
                "server, instant model server); medians",
                "repeats": args.repeats,
                "python": sys.version.split()[0],
                "load_average": os.getloadavg()[0],
                "commits": commits,
                "medians": medians,
                "runs": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
