"""BenchmarkConfig: at once the CLI's options, a YAML file's content and the flow's parameters."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from benchlib import bounds
from benchlib.errors import BenchlibError, describe_validation_error
from benchlib.generation.modelspec import ModelSpec
from benchlib.spec.yamldoc import YamlDoc, read_yaml

DEFAULT_MODEL = "local:smollm2-135m"
# Tracking URI schemes MLflow has a store for (a `+driver` suffix is allowed: postgresql+psycopg).
MLFLOW_SCHEMES = ("http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks")
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def check_http_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host (and a port that exists), else a ValueError
    saying so: a malformed endpoint is bad input, not a traceback at the first request."""
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Input should be a valid URL, ")
        raise ValueError(
            f"expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:11434 "
            f"({reason})"
        ) from None
    return value


def check_mlflow_uri(value: str) -> str:
    """An MLflow tracking URI whose scheme MLflow has a store for: a typo in it would otherwise
    surface only when the run's first MLflow push fails, after the run."""
    if value in ("", "databricks"):  # the local store; Databricks' default profile
        return value
    scheme = urlsplit(value).scheme.lower()
    if scheme.split("+")[0] not in MLFLOW_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ValueError(
            f"{shown}: expected a URI with one of {', '.join(MLFLOW_SCHEMES)} (e.g. "
            "http://127.0.0.1:5000, sqlite:///path/mlflow.db); empty = the local store"
        )
    if scheme in ("http", "https"):
        check_http_url(value)
    return value


def comma_list(value: Any) -> Any:
    """`models: "ollama:a,ollama:b"` (admin panels and scripts send lists this way) and
    `--model a,b` mean the list; whitespace around items is dropped. Anything but strings and
    lists of strings is returned as it is, for pydantic to refuse."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return value
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


class BenchmarkConfig(BaseModel):
    """What to benchmark and how. Every key can come from YAML, a CLI option or a flow parameter."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False
    )

    suite: str = Field(
        "prompts/tips", description="Suite folder (prompt versions, scenarios, rubric)."
    )
    models: list[str] = Field(
        default_factory=lambda: [DEFAULT_MODEL],
        description="Model specs `provider:model` (local, ollama, openai).",
        min_length=1,
    )
    prompts: list[str] = Field(
        default_factory=list, description="Prompt versions to run; empty means all of the suite's."
    )
    n_candidates: int = Field(
        3,
        ge=1,
        le=bounds.MAX_CANDIDATES,
        validation_alias=AliasChoices("n_candidates", "n_tips"),
        description="Candidates generated per cell (old name: n_tips).",
    )
    n_scenarios: int = Field(
        0, ge=0, le=bounds.MAX_SCENARIOS, description="Use at most this many scenarios; 0 = all."
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    seed: int = Field(
        42,
        ge=0,
        le=bounds.MAX_SEED,
        description="Base seed; candidate i is generated with seed + i (a 32-bit seed for "
        "llama.cpp).",
    )
    max_tokens: int = Field(128, ge=1, le=32768, description="Completion token limit per call.")
    experiment: str = Field("", description="MLflow experiment; empty = benchlib-<suite name>.")
    max_model_b: float = Field(
        4.0,
        gt=0,
        le=bounds.MAX_MODEL_B,
        description="Refuse models larger than this many billion parameters.",
    )
    allow_unknown_size: bool = Field(
        False,
        description="Run a model whose server does not tell its parameter count (the size "
        "guard cannot check it); off, such a model is refused.",
    )
    max_attempts_per_cell: int = Field(
        0,
        ge=0,
        le=bounds.MAX_ATTEMPTS,
        description="Cap on provider calls per cell, retries included; 0 = 3 × n_candidates.",
    )
    request_timeout_s: float = Field(
        120.0, gt=0, le=bounds.MAX_REQUEST_TIMEOUT_S, description="Timeout of one provider call."
    )
    max_backoff_s: float = Field(
        20.0,
        gt=0,
        le=bounds.MAX_BACKOFF_S,
        description="Longest wait between two attempts of a call (exponential backoff with "
        "jitter); a Retry-After asking for more fails the call.",
    )
    ollama_url: str = Field("http://127.0.0.1:11434", description="Ollama server URL.")
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="OpenAI-compatible base URL (ends in /v1)."
    )
    openai_api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the OpenAI-compatible API key."
    )
    local_models: dict[str, str] = Field(
        default_factory=dict,
        description="Extra `local:` aliases: alias -> GGUF file path.",
    )
    mlflow_url: str = Field(
        "",
        description="MLflow tracking URI; empty = the environment's MLFLOW_TRACKING_URI, else "
        "the sqlite store under .benchlib/.",
    )
    mlflow_traces: Literal["all", "final", "off"] = Field(
        "final",
        description="MLflow traces, one per candidate: all = as each cell is recorded (watch a "
        "run live; each trace is written again with its scores); final = once the run is "
        "scored, scores included (half the writes); off = none.",
    )
    mlflow_flush_s: float = Field(
        60.0,
        ge=0,
        le=bounds.MAX_FLUSH_S,
        description="How long the end of a run waits for MLflow to take the backlog; what is "
        "left stays queued for `benchlib sync`.",
    )
    no_cache: bool = Field(False, description="Neither read nor write the response cache.")
    refresh: bool = Field(False, description="Call the provider again and refresh the cache.")
    execution: Literal["local", "pool"] = Field(
        "local",
        description="local: this process generates every cell; pool: one child flow run per "
        "model on the `benchlib-gpu` work pool (see deployments/README.md).",
    )
    max_inflight: int = Field(
        1,
        ge=1,
        le=64,
        description="Requests in flight at once to a model's server within its one `gpu` slot, "
        "for servers that batch them (vLLM, llama.cpp; the local server gets this many slots).",
    )
    judge: Literal["human", "skip", "model", "human+model"] = Field(
        "human",
        description="human: wait for judgements (a deployment suspends; the CLI offers terminal "
        "judging); skip: objective scores only; model: `judge_model` scores the blind items "
        "after generation; human+model: the model, then wait for people as `human` does.",
    )
    judge_model: str = Field(
        "",
        description="The judge model (`provider:model`) of `judge: model` and `human+model`; "
        "it must not be one of `models`.",
    )
    judges: Literal["human", "model", "all"] = Field(
        "human",
        description="Whose judgements the composite uses: human: people's where any exist, "
        "else the model judges'; model: the model judges' only; all: both, averaged.",
    )
    judge_mode: Literal["rubric", "pairwise"] = Field(
        "rubric",
        description="rubric: judges score each output on the rubric's criteria; pairwise: they "
        "pick the better of two blind outputs for the same scenario (Bradley-Terry strengths).",
    )
    judge_timeout_s: int = Field(
        7 * 24 * 3600,
        gt=0,
        le=bounds.MAX_JUDGE_TIMEOUT_S,
        description="How long a deployment run waits for judges.",
    )
    baseline: str = Field(
        "",
        max_length=bounds.MAX_RUN_ID,
        description="Compare with this run id or `latest` (previous completed run); empty = no.",
    )
    tolerance: float = Field(
        0.0,
        ge=0.0,
        le=bounds.MAX_TOLERANCE,
        description="Accept a mean quality drop down to this (eval report).",
    )
    allow_prompt_change: bool = Field(
        False, description="Pair cells whose prompt text changed: the prompt is the change tested."
    )
    allow_uncompared: bool = Field(
        False,
        description="Accept the verdict although cells of the run have no comparable baseline "
        "cell (recorded in the eval report); without it they make it not acceptable.",
    )
    require_improvement: bool = Field(
        False,
        description="Acceptable only if every pair improved and none broke (aggregate score > 0), "
        "instead of: no regression beyond the tolerance.",
    )
    fixtures: bool = Field(
        False,
        description="Use the scenarios stored for this suite (admin API fixtures, latest version "
        "of each, integrity-checked) instead of the suite's scenarios file.",
    )
    run_id: str = Field(
        "",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$",
        description="Id of the new run; empty = generated (the admin API picks it to answer "
        "with it before the flow starts).",
    )

    @field_validator("models", "prompts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("models")
    @classmethod
    def _models_are_specs(cls, value: list[str]) -> list[str]:
        for spec in value:
            ModelSpec.parse(spec)
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate model specs in {value}")
        return value

    @field_validator("judge_model")
    @classmethod
    def _judge_model_is_a_spec(cls, value: str) -> str:
        if value:
            ModelSpec.parse(value)
        return value

    @field_validator("experiment")
    @classmethod
    def _experiment_is_one_name(cls, value: str) -> str:
        """The name becomes a folder under BENCHLIB_HOME (MLflow artifacts): it must stay one."""
        if value in (".", "..") or any(c in "/\\" or not c.isprintable() for c in value):
            raise ValueError(
                "expected a name without '/', '\\' or control characters, other than '.' or "
                "'..' (it names a folder)"
            )
        return value

    @field_validator("ollama_url", "openai_base_url")
    @classmethod
    def _endpoint_is_url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("mlflow_url")
    @classmethod
    def _mlflow_uri(cls, value: str) -> str:
        return check_mlflow_uri(value)

    @field_validator("prompts")
    @classmethod
    def _prompts_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate prompt versions in {value}")
        return value

    @property
    def cache_mode(self) -> Literal["use", "refresh", "off"]:
        return "off" if self.no_cache else "refresh" if self.refresh else "use"

    @property
    def attempt_budget(self) -> int:
        return self.max_attempts_per_cell or 3 * self.n_candidates

    @property
    def model_specs(self) -> list[ModelSpec]:
        return [ModelSpec.parse(spec) for spec in self.models]


def build_config(
    values: dict[str, Any],
    source: str | Callable[[Sequence[str | int]], str] = "configuration",
) -> BenchmarkConfig:
    """Validate `values`, turning pydantic's error into one that names where each bad value
    came from (`source`: a name, or a function of the field's path), the field and the value."""
    try:
        config = BenchmarkConfig.model_validate(values)
    except ValidationError as exc:
        raise BenchlibError(describe_validation_error(exc, source, BenchmarkConfig)) from None
    where = source(("max_attempts_per_cell",)) if callable(source) else source
    if config.max_attempts_per_cell and config.max_attempts_per_cell < config.n_candidates:
        raise BenchlibError(
            f"{where}: max_attempts_per_cell ({config.max_attempts_per_cell}) is lower than "
            f"n_candidates ({config.n_candidates}): every candidate needs at least one call"
        )
    check_judge_model(config, source(("judge_model",)) if callable(source) else source)
    return config


def check_judge_model(config: BenchmarkConfig, where: str) -> None:
    """A model judge needs a model, and not one of those it judges (it would be biased)."""
    if config.judge in ("model", "human+model") and not config.judge_model:
        raise BenchlibError(
            f"{where}: judge_model: judge is {config.judge!r}, which needs a judge model "
            "(`provider:model`), got none"
        )
    if config.judge in ("model", "human+model") and config.judge_mode == "pairwise":
        raise BenchlibError(
            f"{where}: judge: {config.judge!r} scores outputs on the rubric; the model judge "
            "has no pairwise mode: use judge_mode: rubric, or judge: human"
        )
    if config.judge_model and config.judge_model in config.models:
        raise BenchlibError(
            f"{where}: judge_model: {config.judge_model!r} is also one of the judged models "
            f"({', '.join(config.models)}); a model judging its own outputs is biased: pick "
            "another judge model"
        )


def read_config_file(path: Path) -> YamlDoc:
    """The mapping in a YAML config file, or a clear error naming the file and line."""
    doc = read_yaml(path, what="config file")
    if doc.data is not None and not isinstance(doc.data, dict):
        raise BenchlibError(
            f"{doc.where()}: expected a mapping of config keys, got {type(doc.data).__name__}"
        )
    return doc


def load_config(path: Path | None = None, **overrides: Any) -> BenchmarkConfig:
    """File values first, then the given overrides (CLI options, flow parameters) on top. A bad
    value from the file is shown at its `path:line`, one from an override as `command line`."""
    doc = read_config_file(path) if path else None
    given = {key: value for key, value in overrides.items() if value is not None}
    values = dict(doc.data or {}) if doc else {}
    values.update(given)

    def source(loc: Sequence[str | int]) -> str:
        return doc.where(loc) if doc and not (loc and loc[0] in given) else "command line"

    return build_config(values, source)
