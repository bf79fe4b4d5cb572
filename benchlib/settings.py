"""Where benchlib keeps its state on this machine.

Read from the environment on every call (not at import) so that a test, a worker and the CLI
can each point the same code at a different home without reloading modules.
"""

import os
import socket
from pathlib import Path

HOME_ENV = "BENCHLIB_HOME"
DATABASE_URL_ENV = "BENCHLIB_DATABASE_URL"
WORKER_NAME_ENV = "BENCHLIB_WORKER_NAME"


def home() -> Path:
    """The state folder (database, MLflow store, logs): `.benchlib/` in the working directory."""
    path = Path(os.environ.get(HOME_ENV, ".benchlib")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home() / 'benchlib.db'}"


def default_mlflow_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_uri(mlflow_url: str) -> str:
    """The MLflow tracking URI of a run whose config says `mlflow_url`."""
    return mlflow_url or default_mlflow_uri()


def mlflow_artifact_root() -> str:
    return (home() / "mlartifacts").as_uri()


def worker_identity() -> str:
    """name@host:pid of this process, recorded on each cell: with a work pool a run's cells
    are generated on several hosts, and this says which one (and which flow-run process)."""
    name = os.environ.get(WORKER_NAME_ENV, "local")
    return f"{name}@{socket.gethostname()}:{os.getpid()}"
