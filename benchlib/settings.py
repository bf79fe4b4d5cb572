"""Where benchlib keeps its state on this machine.

Read from the environment on every call (not at import) so that a test, a worker and the CLI
can each point the same code at a different home without reloading modules.
"""

import os
from pathlib import Path

HOME_ENV = "BENCHLIB_HOME"
DATABASE_URL_ENV = "BENCHLIB_DATABASE_URL"


def home() -> Path:
    """The state folder (database, MLflow store, logs): `.benchlib/` in the working directory."""
    path = Path(os.environ.get(HOME_ENV, ".benchlib")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home() / 'benchlib.db'}"


def default_mlflow_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    return (home() / "mlartifacts").as_uri()
