"""The admin API's settings: its token, the deployment it triggers, where the UIs are, and what
a request may point it at (suite folders, model and MLflow endpoints, key variables, Host
names). Everything a request could use to reach outside the server comes from here, set by the
operator in the environment; docs/security.md lists the variables."""

import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, Field, ValidationError, field_validator

from benchlib import settings
from benchlib.api.auth import TOKEN_ENV
from benchlib.errors import BenchlibError, describe_validation_error

MIN_TOKEN_CHARS = 16
SUITE_ROOTS_ENV = "BENCHLIB_SUITE_ROOTS"
ENDPOINTS_ENV = "BENCHLIB_API_ALLOWED_ENDPOINTS"
KEY_ENVS_ENV = "BENCHLIB_API_ALLOWED_KEY_ENVS"
HOSTS_ENV = "BENCHLIB_API_ALLOWED_HOSTS"
MAX_BODY_ENV = "BENCHLIB_API_MAX_BODY_BYTES"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"]


class ApiSettings(BaseModel):
    token: str = Field("", description="Empty only in a local demo (no auth).")
    deployment: str = Field("benchmark/default", description="The deployment runs are made of.")
    prefect_api_url: str = Field("", description="Prefect's API; empty = cannot trigger.")
    mlflow_ui_url: str = Field("", description="MLflow UI for runs tracked in a local store.")
    suite_roots: list[Path] = Field(
        default_factory=lambda: [Path("prompts").resolve()],
        description="Folders a run's suite must be in (resolved: no symlink or `..` escapes).",
    )
    allowed_endpoints: list[str] = Field(
        default_factory=list,
        description="URLs a request may name as openai_base_url, ollama_url or mlflow_url, "
        "besides the config's defaults (OpenAI's API, Ollama on loopback, the local MLflow "
        "store).",
    )
    allowed_key_envs: list[str] = Field(
        default_factory=list,
        description="Environment variables a request may name as openai_api_key_env, besides "
        "the config's default (OPENAI_API_KEY).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host header names served (DNS rebinding); `*` = any.",
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get 413.")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < MIN_TOKEN_CHARS:
            raise ValueError(f"a token needs at least {MIN_TOKEN_CHARS} characters")
        return value

    @property
    def prefect_ui_url(self) -> str:
        return self.prefect_api_url.removesuffix("/").removesuffix("/api")

    @classmethod
    def from_env(cls, demo: bool = False, host: str = "") -> "ApiSettings":
        """Refuses to go on without a token unless this is a local demo, or with a short one.
        `host` (the interface served) joins the Host names allowed unless it is a wildcard."""
        token = os.environ.get(TOKEN_ENV, "")
        if not token and not demo:
            raise BenchlibError(
                f"{TOKEN_ENV} is not set: the admin API does not start without a token "
                "(set it, or pass --demo for a local demo without auth)"
            )
        if token and len(token) < MIN_TOKEN_CHARS:  # said here: the message must not quote it
            raise BenchlibError(
                f"{TOKEN_ENV}: the token has {len(token)} characters, fewer than "
                f"{MIN_TOKEN_CHARS}: use a long random one (`benchlib stack up` makes one)"
            )
        defaults = cls()
        hosts = _listed(HOSTS_ENV) or [*defaults.allowed_hosts, host]
        values = {
            "token": token,
            "deployment": os.environ.get("BENCHLIB_API_DEPLOYMENT", "benchmark/default"),
            "prefect_api_url": os.environ.get("PREFECT_API_URL", ""),
            "mlflow_ui_url": settings.mlflow_ui_url(),
            "suite_roots": [
                *defaults.suite_roots,
                *(Path(p) for p in os.environ.get(SUITE_ROOTS_ENV, "").split(os.pathsep) if p),
            ],
            "allowed_endpoints": _listed(ENDPOINTS_ENV),
            "allowed_key_envs": _listed(KEY_ENVS_ENV),
            "allowed_hosts": [h for h in hosts if h not in ("", "0.0.0.0", "::")],
            "max_body_bytes": os.environ.get(MAX_BODY_ENV, defaults.max_body_bytes),
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise BenchlibError(describe_validation_error(exc, "environment", cls)) from None


def _listed(name: str) -> list[str]:
    """A comma-separated environment variable's items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


Settings = Annotated[ApiSettings, Depends(_settings)]
