"""Any OpenAI-compatible /v1/chat/completions server: OpenAI, vLLM, llama.cpp, LM Studio."""

import os
from typing import Any, ClassVar

import httpx

from benchlib.errors import BenchlibError, RemoteAnswer
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


def size_b_from_meta(entry: dict[str, Any]) -> float | None:
    """llama.cpp's /v1/models tells a model's parameter count in `meta`; other servers do not."""
    n_params = (entry.get("meta") or {}).get("n_params")
    return n_params / 1e9 if n_params else None


class OpenAIProvider(Provider):
    # Server-specific request fields (the local llama.cpp server turns its prompt cache off).
    extra_body: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        spec: ModelSpec,
        base_url: str,
        timeout_s: float,
        api_key_env: str = "OPENAI_API_KEY",
    ):
        super().__init__(spec)
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def _models(self) -> list[dict[str, Any]]:
        try:
            response = self.client.get("/models", timeout=10)
        except httpx.TransportError as exc:
            raise BenchlibError(
                f"{self.spec}: endpoint {self.base_url} is unreachable ({type(exc).__name__}: "
                f"{exc}); start the server or set openai_base_url"
            ) from None
        if response.status_code in (401, 403):
            raise BenchlibError(
                f"{self.spec}: {self.base_url} refused the API key (HTTP {response.status_code}); "
                f"set it in the environment variable {self.api_key_env}"
            )
        if response.status_code != 200:
            raise BenchlibError(
                f"{self.spec}: {self.base_url}/models answered HTTP {response.status_code}"
            )
        try:
            models = response.json().get("data", [])
        except (ValueError, AttributeError):
            models = None
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            raise BenchlibError(
                f"{self.spec}: {self.base_url}/models did not answer an OpenAI model list "
                "(a JSON object with a `data` list); is openai_base_url right?"
            )
        return models

    def preflight(self) -> ModelInfo:
        models = self._models()
        known = {m.get("id"): m for m in models}
        for listed in models:
            for alias in listed.get("aliases") or []:
                known.setdefault(alias, listed)
        entry = known.get(self.spec.model)
        if entry is None:
            unknown = f"{self.spec}: unknown model {self.spec.model!r} at {self.base_url}"
            served = sorted(str(m.get("id")) for m in models)
            raise RemoteAnswer(f"{unknown}: expected one of {served}", public=unknown)
        return ModelInfo(spec=str(self.spec), size_b=size_b_from_meta(entry))

    def chat(
        self, request: ChatRequest, budget: AttemptBudget, calls: list[CallRecord]
    ) -> ChatResult:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "seed": request.seed,
            "max_tokens": request.max_tokens,
            **self.extra_body,
        }
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.response_schema},
            }
        payload, latency = post_json(
            self.client, "/chat/completions", body, budget, calls, describe=str(self.spec)
        )
        choice = (payload.get("choices") or [{}])[0]
        usage = payload.get("usage") or {}
        calls[-1].prompt_tokens = usage.get("prompt_tokens", 0)
        calls[-1].completion_tokens = usage.get("completion_tokens", 0)
        return ChatResult(
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason") or "",
            prompt_tokens=calls[-1].prompt_tokens,
            completion_tokens=calls[-1].completion_tokens,
            latency_s=latency,
            raw=payload,
        )
