"""A loopback server in front of the real model that fails on purpose (retry/failure tests)."""

import json

import httpx
from fastapi import FastAPI, Request, Response


def flaky_app(llm_url: str, failures: list[int]) -> FastAPI:
    """Chat requests get the next status in `failures` (then the real model's answer);
    /v1/models is always passed through, so preflight sees a healthy server."""
    app = FastAPI()
    app.state.chats = 0  # chat requests that reached the model

    async def forward(req: Request, path: str) -> Response:
        async with httpx.AsyncClient(base_url=llm_url, timeout=60) as client:
            upstream = await client.request(req.method, path, content=await req.body())
        return Response(upstream.content, upstream.status_code, media_type="application/json")

    @app.get("/v1/models")
    async def models(req: Request) -> Response:
        return await forward(req, "/v1/models")

    @app.post("/v1/chat/completions")
    async def chat(req: Request) -> Response:
        if failures:
            status = failures.pop(0)
            return Response(
                json.dumps({"error": {"message": f"injected {status}"}}),
                status_code=status,
                headers={"Retry-After": "0"},
                media_type="application/json",
            )
        app.state.chats += 1
        return await forward(req, "/v1/chat/completions")

    return app
