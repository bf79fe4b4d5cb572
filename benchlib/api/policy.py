"""What a run triggered over the API may point the server at.

A config from a request body is validated like a config file, then held to the server's
settings: its suite must be inside a suite root (resolved, so neither a symlink nor `..` leads
out), its endpoints and key variable must be ones the server allows, and it may not name files
on the server (`local_models`). A token holder can run benchmarks; they cannot make the server
send its secrets elsewhere, read a folder of their choice or run a template from one.
"""

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import Path as PathParam

from benchlib.api.settings import ENDPOINTS_ENV, KEY_ENVS_ENV, SUITE_ROOTS_ENV, ApiSettings
from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError

ENDPOINTS = ("openai_base_url", "ollama_url", "mlflow_url")
MAX_STRING = 4096
MAX_ITEMS = 256

RunId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="A run id, or a unique prefix of one.",
    ),
]


class Forbidden(BenchlibError):
    """The request asks for something the server's settings do not allow (403)."""


def check_bounds(value: Any, where: str = "request body") -> None:
    """Strings and lists of sane size (a 2 MB name fails later, in Prefect or MLflow)."""
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise BenchlibError(f"{where}: {len(value)} characters, more than {MAX_STRING}")
    if isinstance(value, list | dict) and len(value) > MAX_ITEMS:
        raise BenchlibError(f"{where}: {len(value)} items, more than {MAX_ITEMS}")
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        check_bounds(item, f"{where}.{key}" if where != "request body" else str(key))


def _normal(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _inside(path: Path, roots: list[Path]) -> bool:
    real = os.path.realpath(path)
    for root in roots:
        top = os.path.realpath(root)
        if os.path.commonpath([real, top]) == top:
            return True
    return False


def check_config(config: BenchmarkConfig, settings: ApiSettings) -> None:
    """Raises Forbidden naming the field, the value and what the server allows."""
    if not _inside(Path(config.suite), settings.suite_roots):
        roots = [str(root) for root in settings.suite_roots]
        raise Forbidden(
            f"suite: {config.suite!r} is outside the suite folders this server serves {roots} "
            f"(the operator adds folders with {SUITE_ROOTS_ENV})"
        )
    for field in ENDPOINTS:
        url = getattr(config, field)
        allowed = [BenchmarkConfig.model_fields[field].default, *settings.allowed_endpoints]
        if _normal(url) not in {_normal(ok) for ok in allowed}:
            raise Forbidden(
                f"{field}: {url!r} is not an endpoint this server allows "
                f"{sorted(settings.allowed_endpoints)} (the operator adds some with "
                f"{ENDPOINTS_ENV})"
            )
    lent = [BenchmarkConfig.model_fields["openai_api_key_env"].default, *settings.allowed_key_envs]
    if config.openai_api_key_env not in lent:
        raise Forbidden(
            f"openai_api_key_env: {config.openai_api_key_env!r} is not a key variable this server "
            f"lends {lent} (the operator adds some with {KEY_ENVS_ENV})"
        )
    if config.local_models:
        raise Forbidden(
            "local_models: model files on the server are the deployment's to set, not a request's"
        )
