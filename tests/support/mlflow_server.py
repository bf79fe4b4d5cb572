"""A real `mlflow server` subprocess on loopback (sqlite store, lean: one worker, no job
runner) that a test can stop and start again on the same port and store."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchlib.generation.providers.local import free_port

BIN = Path(sys.executable).parent


class MlflowServer:
    """`artifacts`: the server's artifact options; by default it serves artifacts itself
    (`mlflow-artifacts:/`) from a folder of its own."""

    def __init__(self, folder: Path, artifacts: list[str] | None = None) -> None:
        self.folder = folder
        self.artifacts = artifacts or ["--artifacts-destination", str(folder / "artifacts")]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = f"sqlite:///{folder / 'mlflow.db'}"
        self.env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.process: subprocess.Popen | None = None
        # Create the store once, before the server (concurrent first-time creation races).
        subprocess.run(
            [str(BIN / "mlflow"), "db", "upgrade", self.store],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        log = (self.folder / "server.log").open("a")
        self.process = subprocess.Popen(
            [
                *(str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--workers", "1", "--backend-store-uri", self.store),
                *self.artifacts,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise RuntimeError(f"mlflow server did not start; see {self.folder / 'server.log'}")

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
