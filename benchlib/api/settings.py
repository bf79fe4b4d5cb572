"""The admin API's settings: its token, the deployment it triggers, where the UIs are."""

import os
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from benchlib import settings
from benchlib.api.auth import TOKEN_ENV
from benchlib.errors import BenchlibError


class ApiSettings(BaseModel):
    token: str = Field("", description="Empty only in a local demo (no auth).")
    deployment: str = Field("benchmark/default", description="The deployment runs are made of.")
    prefect_api_url: str = Field("", description="Prefect's API; empty = cannot trigger.")
    mlflow_ui_url: str = Field("", description="MLflow UI for runs tracked in a local store.")

    @property
    def prefect_ui_url(self) -> str:
        return self.prefect_api_url.removesuffix("/").removesuffix("/api")

    @classmethod
    def from_env(cls, demo: bool = False) -> "ApiSettings":
        """Refuses to go on without a token unless this is a local demo."""
        token = os.environ.get(TOKEN_ENV, "")
        if not token and not demo:
            raise BenchlibError(
                f"{TOKEN_ENV} is not set: the admin API does not start without a token "
                "(set it, or pass --demo for a local demo without auth)"
            )
        return cls(
            token=token,
            deployment=os.environ.get("BENCHLIB_API_DEPLOYMENT", "benchmark/default"),
            prefect_api_url=os.environ.get("PREFECT_API_URL", ""),
            mlflow_ui_url=settings.mlflow_ui_url(),
        )


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


Settings = Annotated[ApiSettings, Depends(_settings)]
