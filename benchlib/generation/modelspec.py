"""Model specs: `provider:model`, split at the first colon (`ollama:qwen2.5:0.5b` keeps its tag)."""

import difflib
import re

from pydantic import BaseModel, ConfigDict

PROVIDERS = ("local", "ollama", "openai")
# `qwen2.5:0.5b`, `llama3:latest`, `phi3:3.8b-mini-instruct-q4_K_M`: an Ollama name:tag.
_OLLAMA_TAG = re.compile(r"^[a-z0-9][\w.-]*:[\w.-]+$", re.IGNORECASE)


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    model: str

    @classmethod
    def parse(cls, spec: str) -> "ModelSpec":
        provider, sep, model = spec.partition(":")
        if not sep or not provider or not model:
            raise ValueError(
                f"{spec!r} is not a model spec: expected 'provider:model' "
                "(e.g. local:smollm2-135m, ollama:qwen2.5:0.5b, openai:gpt-4o-mini)"
            )
        if provider not in PROVIDERS:
            raise ValueError(
                f"unknown provider {provider!r} in {spec!r}: expected one of "
                f"{', '.join(PROVIDERS)}{_suggestion(spec, provider, model)}"
            )
        return cls(provider=provider, model=model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def _suggestion(spec: str, provider: str, model: str) -> str:
    """A misspelt provider (`olama:`) or a bare Ollama tag (`qwen2.5:0.5b`, which people copy
    from `ollama list`) gets the spec they most likely meant."""
    close = difflib.get_close_matches(provider, PROVIDERS, n=1, cutoff=0.7)
    if close:
        return f"; did you mean '{close[0]}:{model}'?"
    if _OLLAMA_TAG.match(spec):
        return f"; did you mean 'ollama:{spec}'?"
    return ""
