"""What every provider speaks: one chat request in, one result out, every HTTP attempt logged."""

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from benchlib.errors import ProviderError
from benchlib.generation.modelspec import ModelSpec


class ChatRequest(BaseModel):
    messages: list[dict[str, str]]
    temperature: float
    seed: int
    max_tokens: int
    response_schema: dict[str, Any] | None = Field(
        None, description="Constrain decoding to this JSON Schema (structured output)."
    )


class ChatResult(BaseModel):
    text: str
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float
    raw: dict[str, Any]

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.latency_s if self.latency_s > 0 else 0.0


class ModelInfo(BaseModel):
    """What preflight learned about a model: how big it is and which exact weights it is."""

    spec: str
    size_b: float | None = None
    digest: str | None = None


class CallRecord(BaseModel):
    """One HTTP attempt, kept for the traceability log whether it succeeded or not."""

    attempt: int
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    latency_s: float = 0.0
    status_code: int | None = None
    error: str | None = None
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AttemptBudget:
    """The cell's cap on provider calls, retries included (cost control), and on how long a
    retry may wait (a cell holds the `gpu` slot while it waits)."""

    def __init__(self, limit: int, max_backoff_s: float = 20.0):
        self.limit = limit
        self.max_backoff_s = max_backoff_s
        self.used = 0

    def take(self) -> int:
        if self.used >= self.limit:
            raise ProviderError(
                f"attempt budget exhausted: {self.limit} provider calls for this cell "
                "(raise max_attempts_per_cell to allow more)"
            )
        self.used += 1
        return self.used


class Provider(ABC):
    """A model behind an HTTP API. Subclasses say how to reach it and how to read its answers."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @abstractmethod
    def preflight(self) -> ModelInfo:
        """Check the endpoint is reachable and knows the model; report its size when told."""

    @abstractmethod
    def chat(
        self, request: ChatRequest, budget: AttemptBudget, calls: list[CallRecord]
    ) -> ChatResult:
        """Generate one answer, appending every HTTP attempt to `calls`."""

    def load(self) -> float:
        """Make the model ready for a block of cells; returns seconds spent loading (0 if warm)."""
        return 0.0

    def unload(self) -> None:
        """Free the model when the run moves on to another one."""
