"""Ollama's API: /api/chat, /api/show for the size guard, keep_alive for the model's lifetime.

A model stays loaded while its block of cells runs (keep_alive) and is unloaded with keep_alive=0
when the run moves on, never after every call (which would reload it per call).
"""

import re
from typing import Any

import httpx

from benchlib.errors import BenchlibError
from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.providers.base import (
    AttemptBudget,
    CallRecord,
    ChatRequest,
    ChatResult,
    ModelInfo,
    Provider,
)
from benchlib.generation.providers.http import post_json

# Short, and refreshed by every call of the block: a run killed mid-block leaves the model
# loaded on a shared box for at most this long, not for Ollama's usual half hour.
KEEP_ALIVE = "5m"
_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMBT]?)\s*$", re.IGNORECASE)
_SCALE = {"": 1e-9, "K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}


def parameter_size_b(label: str) -> float | None:
    """Ollama's `parameter_size` ("494.03M", "7.6B") in billions."""
    match = _SIZE.match(label or "")
    return float(match[1]) * _SCALE[match[2].upper()] if match else None


class OllamaProvider(Provider):
    def __init__(self, spec: ModelSpec, base_url: str, timeout_s: float):
        super().__init__(spec)
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._held = False  # loaded by us for the current block

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self.client.post(path, json=body, timeout=30)
        except httpx.TransportError as exc:
            raise BenchlibError(
                f"{self.spec}: Ollama at {self.base_url} is unreachable ({type(exc).__name__}); "
                "start it (`ollama serve`) or set ollama_url"
            ) from None

    def preflight(self) -> ModelInfo:
        response = self._post("/api/show", {"model": self.spec.model})
        if response.status_code == 404:
            raise BenchlibError(
                f"{self.spec}: model {self.spec.model!r} not found on Ollama at {self.base_url}; "
                f"pull it first (`ollama pull {self.spec.model}`)"
            )
        if response.status_code != 200:
            raise BenchlibError(
                f"{self.spec}: Ollama /api/show answered HTTP {response.status_code}"
            )
        try:
            show = response.json()
        except ValueError:
            show = None
        if not isinstance(show, dict):
            raise BenchlibError(
                f"{self.spec}: Ollama /api/show did not answer a JSON object; is ollama_url right?"
            )
        count = (show.get("model_info") or {}).get("general.parameter_count")
        size_b = (
            count / 1e9
            if count
            else parameter_size_b((show.get("details") or {}).get("parameter_size", ""))
        )
        return ModelInfo(spec=str(self.spec), size_b=size_b, digest=show.get("digest"))

    def chat(
        self, request: ChatRequest, budget: AttemptBudget, calls: list[CallRecord]
    ) -> ChatResult:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": request.messages,
            "stream": False,
            "keep_alive": KEEP_ALIVE,
            "options": {
                "temperature": request.temperature,
                "seed": request.seed,
                "num_predict": request.max_tokens,
            },
        }
        if request.response_schema is not None:
            body["format"] = request.response_schema
        self._held = True  # keep_alive: Ollama holds it after this call
        payload, latency = post_json(
            self.client, "/api/chat", body, budget, calls, describe=str(self.spec)
        )
        calls[-1].prompt_tokens = payload.get("prompt_eval_count", 0)
        calls[-1].completion_tokens = payload.get("eval_count", 0)
        return ChatResult(
            text=(payload.get("message") or {}).get("content") or "",
            finish_reason=payload.get("done_reason") or "",
            prompt_tokens=calls[-1].prompt_tokens,
            completion_tokens=calls[-1].completion_tokens,
            latency_s=latency,
            raw=payload,
        )

    def load(self) -> float:
        """Load the model for its block (keep_alive) unless Ollama already holds it (/api/ps);
        returns Ollama's load_duration so the run can count its loads. Asked once per block:
        the provider is shared by the block's cells."""
        if self._held:
            return 0.0
        self._held = True
        try:
            running = self.client.get("/api/ps", timeout=30).json().get("models") or []
        except (httpx.TransportError, ValueError):
            running = []
        if any(self.spec.model in (m.get("name"), m.get("model")) for m in running):
            return 0.0
        response = self._post("/api/generate", {"model": self.spec.model, "keep_alive": KEEP_ALIVE})
        if response.status_code != 200:
            return 0.0  # the first chat loads it; its own errors are reported there
        return response.json().get("load_duration", 0) / 1e9

    def unload(self) -> None:
        """keep_alive=0, for a model this block asked Ollama for: a block the response cache
        answered whole never talked to Ollama and has nothing to free."""
        if not self._held:
            return
        self._held = False
        self._post("/api/generate", {"model": self.spec.model, "keep_alive": 0})
