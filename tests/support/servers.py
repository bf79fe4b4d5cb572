"""Real HTTP servers on loopback for the tests: run an ASGI app in a thread, on a free port."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from benchlib.providers.local import free_port


@contextmanager
def serve_app(app, health_path: str = "/") -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    httpx.get(url + health_path)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
