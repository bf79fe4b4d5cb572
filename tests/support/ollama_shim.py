"""A real server speaking the Ollama API (/api/chat, /api/show, /api/tags, /api/ps,
/api/generate) in front of the embedded llama.cpp server, since no Ollama server can be
installed here.

It keeps count of loads and unloads the way Ollama reports them (load_duration), so tests can
check our keep_alive handling.
"""

import time
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class ShimState(BaseModel):
    loaded: str | None = None
    loads: int = 0
    unloads: int = 0
    chats: int = 0
    keep_alive_seen: list[Any] = []


def make_ollama_app(llama_url: str, model: str, n_params: int) -> tuple[FastAPI, ShimState]:
    app = FastAPI()
    state = ShimState()
    client = httpx.Client(base_url=llama_url, timeout=120)

    def known(name: str) -> None:
        if name != model:
            raise HTTPException(404, detail=f"model '{name}' not found")

    @app.get("/api/version")
    def version() -> dict:
        return {"version": "0.6.0-shim"}

    @app.get("/api/tags")
    def tags() -> dict:
        return {"models": [{"name": model, "model": model, "digest": "shim", "size": 1}]}

    @app.post("/api/show")
    def show(body: dict) -> dict:
        known(body.get("model") or body.get("name"))
        return {
            "digest": "sha256:shim",
            "details": {"parameter_size": f"{n_params / 1e6:.2f}M", "format": "gguf"},
            "model_info": {"general.parameter_count": n_params},
            "modified_at": "2026-01-01T00:00:00Z",
        }

    def load(name: str) -> int:
        """Ollama's load_duration in ns: non-zero only when the model had to be loaded."""
        if state.loaded == name:
            return 0
        state.loaded, state.loads = name, state.loads + 1
        return 500_000_000

    @app.get("/api/ps")
    def ps() -> dict:
        return {"models": [{"name": state.loaded, "model": state.loaded}] if state.loaded else []}

    @app.post("/api/generate")
    def generate(body: dict) -> dict:
        """Without a prompt: load (keep_alive > 0) or unload (keep_alive = 0), as Ollama does."""
        known(body["model"])
        if body.get("keep_alive") == 0:
            state.unloads += int(state.loaded is not None)
            state.loaded = None
            return {"model": body["model"], "done": True, "done_reason": "unload", "response": ""}
        load_ns = load(body["model"])
        return {"model": body["model"], "done": True, "load_duration": load_ns, "response": ""}

    @app.post("/api/chat")
    def chat(body: dict) -> dict:
        known(body["model"])
        state.chats += 1
        state.keep_alive_seen.append(body.get("keep_alive"))
        load_ns = load(body["model"])
        options = body.get("options") or {}
        request: dict[str, Any] = {
            "messages": body["messages"],
            "temperature": options.get("temperature", 0.8),
            "seed": options.get("seed", 0),
            "max_tokens": options.get("num_predict", 128),
        }
        if isinstance(body.get("format"), dict):
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": body["format"]},
            }
        start = time.perf_counter_ns()
        answer = client.post("/v1/chat/completions", json=request).json()
        usage = answer.get("usage", {})
        return {
            "model": body["model"],
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": answer["choices"][0]["message"]["content"]},
            "done": True,
            "done_reason": answer["choices"][0].get("finish_reason", "stop"),
            "total_duration": time.perf_counter_ns() - start + load_ns,
            "load_duration": load_ns,
            "prompt_eval_count": usage.get("prompt_tokens", 0),
            "eval_count": usage.get("completion_tokens", 0),
        }

    return app, state
