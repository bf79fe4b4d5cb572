"""Providers: how a `provider:model` spec reaches a model.

`provider_for(spec, config)` returns one provider object per (spec, endpoint settings) in this
process, so HTTP connection pools and loaded models are reused across cells.
"""

from functools import cache

from benchlib.config import BenchmarkConfig
from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.providers.base import (
    AttemptBudget,
    CallRecord,
    ChatRequest,
    ChatResult,
    ModelInfo,
    Provider,
)
from benchlib.generation.providers.local import LocalProvider, servers
from benchlib.generation.providers.ollama import OllamaProvider
from benchlib.generation.providers.openai import OpenAIProvider

__all__ = [
    "AttemptBudget",
    "CallRecord",
    "ChatRequest",
    "ChatResult",
    "ModelInfo",
    "Provider",
    "provider_for",
    "servers",
]


@cache
def _provider(
    spec: ModelSpec,
    timeout_s: float,
    ollama_url: str,
    openai_base_url: str,
    api_key_env: str,
    local_models: tuple[tuple[str, str], ...],
    max_inflight: int,
) -> Provider:
    if spec.provider == "local":
        return LocalProvider(spec, dict(local_models), timeout_s, slots=max_inflight)
    if spec.provider == "ollama":
        return OllamaProvider(spec, ollama_url, timeout_s)
    return OpenAIProvider(spec, openai_base_url, timeout_s, api_key_env)


def provider_for(spec: ModelSpec, config: BenchmarkConfig) -> Provider:
    return _provider(
        spec,
        config.request_timeout_s,
        config.ollama_url,
        config.openai_base_url,
        config.openai_api_key_env,
        tuple(sorted(config.local_models.items())),
        config.max_inflight,
    )
