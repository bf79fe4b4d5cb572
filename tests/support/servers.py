"""Real HTTP servers on loopback for the tests: run an ASGI app in a thread, on a free port."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from benchlib.generation.providers.local import free_port


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


def make_attacker_app(model_ids: list[str]):
    """An "attacker" OpenAI-compatible server: it records the Authorization header of every
    request it receives (the list returned) and answers /v1/models with `model_ids`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[str | None] = []

    async def anything(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"object": "list", "data": [{"id": m} for m in model_ids]})

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    return app, seen
