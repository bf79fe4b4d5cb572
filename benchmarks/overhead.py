"""Harness overhead on the fixed peer grid (../shared/peer-grid: 2 prompts × 12 scenarios, 1
model, temperature 0, max_tokens 64), against one llama.cpp server with its prompt cache off:

  raw       a plain httpx loop (benchmarks/raw_loop.py), the physical floor
  cold      `benchlib run` with no Prefect server running (ephemeral server start included)
  stack     `benchlib run` against a running `prefect server start`, as with the local stack
  warm      the same grid again with the response cache (zero provider calls expected)

Every harness is its own process, timed from here, so each pays interpreter start alike. Every
harness talks to the server through one counting loopback proxy: the llama.cpp server that
xllamacpp embeds answers /metrics only when started with --metrics (LlamaServer does not) and its
/slots shows no task counter, so calls and completion tokens are counted on the wire, the same
way for everyone. The suite's versions do not ask for structured output, so benchlib sends no
response_format, like the raw loop and the peers: the token column shows they generate the same.

The "1st call s" column is the time from a harness's process start to its first request at
the proxy: its start-up cost (a warm rerun makes none). "model s" is the time the proxy waited
on the model server (the sum over the run's requests) and "rest s" the rest of the wall time:
what the harness itself costs. On a shared box the model's time varies by several percent from
run to run, for every harness alike; "rest s" does not, so it compares harnesses more steadily
than the wall-time ratio does.

Runs alternate, `--repeats` times; prints a table and writes benchmarks/results/overhead.json.
    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--grid ../shared/peer-grid]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from benchlib.generation.providers.local import LlamaServer, embedded_model_path, free_port
from benchlib.settings import PREFECT_SERVER_ENV

ROOT = Path(__file__).resolve().parent.parent
RAW_LOOP = Path(__file__).resolve().parent / "raw_loop.py"
ALIAS = "smollm2"


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


@dataclass
class Tally:
    calls: int = 0
    completion_tokens: int = 0
    first_call_at: float | None = None  # perf_counter when the first chat request arrived
    model_s: float = 0.0  # time spent waiting on the model server for chat completions
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> tuple[int, int, float | None, float]:
        """The counts since the last take, reset to zero: one harness run's share."""
        with self.lock:
            counts = (self.calls, self.completion_tokens, self.first_call_at, self.model_s)
            self.calls = self.completion_tokens = 0
            self.first_call_at = None
            self.model_s = 0.0
        return counts


class CountingProxy:
    """A loopback HTTP/1.1 proxy in front of the model server that counts chat completions and
    the completion tokens they returned; every harness is pointed at it instead of the server."""

    def __init__(self, upstream: str) -> None:
        self.tally = Tally()
        client = httpx.Client(base_url=upstream, timeout=300)
        tally = self.tally

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the harnesses expect of a server

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                chat = self.command == "POST" and self.path.endswith("/chat/completions")
                sent = time.perf_counter()
                if chat:
                    with tally.lock:
                        tally.first_call_at = tally.first_call_at or sent
                headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
                answer = client.request(self.command, self.path, content=body, headers=headers)
                if chat:
                    usage = answer.json().get("usage") or {} if answer.is_success else {}
                    with tally.lock:
                        tally.calls += 1
                        tally.completion_tokens += usage.get("completion_tokens", 0)
                        tally.model_s += time.perf_counter() - sent
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def model_server() -> Iterator[CountingProxy]:
    """The grid's one model server (2 threads, prompt cache off) behind the counting proxy."""
    llama = LlamaServer(embedded_model_path(), ALIAS, threads=2, cache_prompt=False)
    proxy = CountingProxy(llama.url)
    try:
        yield proxy
    finally:
        proxy.stop()
        llama.stop()


@contextmanager
def prefect_server(env: dict[str, str]) -> Iterator[str]:
    """A running `prefect server start` (its home and database from `env`); yields its API URL."""
    port = free_port()
    prefect = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--port", str(port)],
        env=dict(env, **PREFECT_SERVER_ENV),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health")
        yield f"http://127.0.0.1:{port}/api"
    finally:
        prefect.terminate()
        prefect.wait(30)


@contextmanager
def prefect_stack(base_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A running `prefect server start`; yields the environment that points benchlib at it."""
    with prefect_server(base_env) as api:
        yield dict(base_env, PREFECT_API_URL=api)


def benchlib_env(work: Path) -> dict[str, str]:
    """A private benchlib and Prefect home under `work`, with no stack configured."""
    env = dict(
        os.environ,
        BENCHLIB_HOME=str(work / "home"),
        PREFECT_HOME=str(work / "prefect"),
    )
    env.pop("PREFECT_API_URL", None)
    return env


class HarnessFailed(RuntimeError):
    pass


@dataclass
class Measure:
    """One harness's runs: wall seconds, provider calls and completion tokens of each, the
    seconds from the process's start to its first request (its start-up cost) and the seconds
    spent waiting on the model."""

    wall_s: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    first_call_s: list[float] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    error: str = ""

    def timed(
        self,
        proxy: CountingProxy,
        command: list[str],
        env: dict[str, str] | None = None,
        ok_codes: tuple[int, ...] = (0,),
        cwd: Path = ROOT,
    ) -> None:
        """Runs `command` as a process, timed from here; a failure raises HarnessFailed with
        the end of what the process said."""
        proxy.tally.take()
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        wall_s = time.perf_counter() - start
        if done.returncode not in ok_codes:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
            raise HarnessFailed(
                f"{Path(command[0]).name} exit {done.returncode}: {' | '.join(said)}"
            )
        self.wall_s.append(wall_s)
        calls, tokens, first_call_at, model_s = proxy.tally.take()
        self.calls.append(calls)
        self.tokens.append(tokens)
        self.model_s.append(model_s)
        if first_call_at is not None:
            self.first_call_s.append(first_call_at - start)

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def rest_s(self) -> list[float]:
        """Each run's wall time less its time at the model: the harness's own cost."""
        return [wall - model for wall, model in zip(self.wall_s, self.model_s, strict=True)]


def raw_command(grid: Path, url: str) -> list[str]:
    return [sys.executable, str(RAW_LOOP), str(grid), url]


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


def benchlib_command(suite: Path, grid: Path, url: str, cache: bool) -> list[str]:
    params = json.loads((grid / "params.json").read_text())
    return [
        *(sys.executable, "-m", "benchlib", "run", str(suite)),
        *("--model", f"openai:{params['model']}", "--openai-base-url", f"{url}/v1"),
        *("--temperature", str(params["temperature"]), "--max-tokens", str(params["max_tokens"])),
        *("--n-candidates", str(params["n"]), "--judge", "skip", "--experiment", "overhead"),
        *(() if cache else ("--no-cache",)),
    ]


def print_table(results: dict[str, Measure]) -> None:
    raw = results["raw"]
    header = f"{'harness':<10} {'median s':>9} {'÷ raw':>7} {'model s':>8} {'rest s':>7}"
    print(f"{header} {'calls':>6} {'tokens':>7} {'1st call s':>10}   runs (s)")
    for name, m in results.items():
        if m.error:
            dashes = " ".join(f"{'—':>{width}}" for width in (9, 7, 8, 7, 6, 7, 10))
            print(f"{name:<10} {dashes}   {m.error}")
            continue
        first = f"{statistics.median(m.first_call_s):.2f}" if m.first_call_s else "—"
        calls = "/".join(str(c) for c in sorted(set(m.calls)))
        tokens = "/".join(str(t) for t in sorted(set(m.tokens)))
        runs = " ".join(f"{v:.1f}" for v in m.wall_s)
        ratio = m.median_s / raw.median_s
        model, rest = statistics.median(m.model_s), statistics.median(m.rest_s)
        row = f"{name:<10} {m.median_s:>9.1f} {ratio:>7.2f} {model:>8.1f} {rest:>7.2f}"
        print(f"{row} {calls:>6} {tokens:>7} {first:>10}   {runs}")
    beyond = [
        f"{name} {statistics.median(m.rest_s) - statistics.median(raw.rest_s):+.2f} s"
        for name, m in results.items()
        if name != "raw" and not m.error and any(m.model_s)
    ]
    print(f"rest beyond the raw loop's (the model's time left out): {', '.join(beyond)}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def write_results(name: str, results: dict[str, Measure], **extra: object) -> None:
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    rows = {
        harness: {
            "wall_s": m.wall_s,
            "median_s": m.median_s if m.wall_s else None,
            "ratio_to_raw": m.median_s / results["raw"].median_s if m.wall_s else None,
            "calls": m.calls,
            "completion_tokens": m.tokens,
            "first_call_s": m.first_call_s,
            "model_s": m.model_s,
            "rest_s": m.rest_s if m.wall_s else [],
            "error": m.error,
        }
        for harness, m in results.items()
    }
    record = {"load_average": os.getloadavg(), **extra, "harnesses": rows}
    out.write_text(json.dumps(record, indent=2))


@dataclass
class Bench:
    """What a benchmark of the peer grid runs in: its arguments, a private work folder holding
    the grid as a benchlib suite, the model server's proxy and a running Prefect stack."""

    repeats: int
    grid: Path
    work: Path
    suite: Path
    env: dict[str, str]  # benchlib with no stack running
    stack_env: dict[str, str]  # benchlib against the running stack
    proxy: CountingProxy


@contextmanager
def bench(doc: str, name: str) -> Iterator[Bench]:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", type=Path, default=ROOT.parent / "shared" / "peer-grid")
    args = parser.parse_args()
    # a killed benchmark still stops its servers: SIGTERM unwinds the context managers below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix=f"benchlib-{name}-") as folder:
        work = Path(folder)
        write_suite(args.grid, work / "peer-grid")
        env = benchlib_env(work)
        with model_server() as proxy, prefect_stack(env) as stack_env:
            yield Bench(args.repeats, args.grid, work, work / "peer-grid", env, stack_env, proxy)


def main() -> None:
    results = {name: Measure() for name in ("raw", "cold", "stack", "warm")}
    with bench(__doc__ or "", "overhead") as b:
        cold = benchlib_command(b.suite, b.grid, b.proxy.url, cache=False)
        warm = benchlib_command(b.suite, b.grid, b.proxy.url, cache=True)
        Measure().timed(b.proxy, warm, b.stack_env)  # fills the cache for "warm"
        for _ in range(b.repeats):
            results["raw"].timed(b.proxy, raw_command(b.grid, b.proxy.url))
            results["cold"].timed(b.proxy, cold, b.env)
            results["stack"].timed(b.proxy, cold, b.stack_env)
            results["warm"].timed(b.proxy, warm, b.stack_env)
    print_table(results)
    print(f"warm rerun = {results['warm'].median_s / results['cold'].median_s:.1%} of the cold run")
    write_results("overhead", results, repeats=b.repeats)


if __name__ == "__main__":
    main()
