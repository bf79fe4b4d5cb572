"""Model specs: `provider:model`, split at the first colon (`ollama:qwen2.5:0.5b` keeps its tag)."""

from pydantic import BaseModel, ConfigDict

PROVIDERS = ("local", "ollama", "openai")


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
                f"unknown provider {provider!r} in {spec!r}: expected one of {', '.join(PROVIDERS)}"
            )
        return cls(provider=provider, model=model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"
