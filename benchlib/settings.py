"""Where benchlib keeps its state on this machine.

Read from the environment on every call (not at import) so that a test, a worker and the CLI
can each point the same code at a different home without reloading modules.
"""

import os
import shutil
import socket
from functools import lru_cache
from pathlib import Path

from benchlib.errors import BenchlibError

HOME_ENV = "BENCHLIB_HOME"
DATABASE_URL_ENV = "BENCHLIB_DATABASE_URL"
WORKER_NAME_ENV = "BENCHLIB_WORKER_NAME"
GPU_SLOTS_ENV = "BENCHLIB_GPU_SLOTS"
API_URL_ENV = "BENCHLIB_API_URL"
# Prefect's task run recorder writes each task event in a transaction of its own; a block of
# cells makes dozens a second, and an API write that meets one on the server's SQLite fails
# ("database is locked", HTTP 503) and is retried by the client 2 s later. Measured on 8 runs
# of 24 cells each: a 503 in 5 runs with the defaults, in 2 with the recorder batched.
PREFECT_SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def configure_prefect_servers() -> None:
    """Give a Prefect server this process starts (the ephemeral one, when no PREFECT_API_URL
    is set) the stack's settings. Unbatched, a 2,000-cell run's scoring subflow failed to start:
    six attempts in a row met the recorder's backlog."""
    for key, value in PREFECT_SERVER_ENV.items():
        os.environ.setdefault(key, value)


def home() -> Path:
    """The state folder (database, MLflow store, logs): `.benchlib/` in the working directory."""
    return _created(home_path())


@lru_cache(maxsize=32)
def _created(path: Path) -> Path:
    """Made once per process and folder: every database session asks for the home, ~10 per
    cell, and a mkdir each time cost ~0.7 ms a cell (py-spy, 24-cell run). A home that is a
    file, or that this user may not write, is bad input said before anything starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise _home_is_a_file(path) from None
    except OSError as exc:
        raise BenchlibError(
            f"{HOME_ENV}: {path} cannot be created: {exc.strerror}: expected a folder this "
            "user can write"
        ) from None
    if not path.is_dir():
        raise BenchlibError(f"{HOME_ENV}: {path} is not a folder: expected a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise BenchlibError(
            f"{HOME_ENV}: {path} is not writable: expected a folder this user can write"
        )
    return path


def _home_is_a_file(path: Path) -> BenchlibError:
    return BenchlibError(f"{HOME_ENV}: {path} is a file: expected a folder")


# A run records every answer, call, score and MLflow entry as it goes: below this much free
# space where they are written, it is refused before it starts rather than failing half-way.
MIN_FREE_BYTES = 64 * 2**20


def check_free_space(minimum: int = MIN_FREE_BYTES) -> None:
    """Refuse to start work on a nearly full disk: the home's file system (its nearest existing
    folder: nothing is created to ask) and, for SQLite, the database file's."""
    places = [home_path()]
    database = os.environ.get(DATABASE_URL_ENV, "")
    if database.startswith("sqlite") and database.partition("///")[2] not in ("", ":memory:"):
        places.append(Path(database.partition("///")[2]))
    for place in places:
        existing = next((p for p in (place, *place.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(existing).free
        if free < minimum:
            raise BenchlibError(
                f"{place}: {free / 2**20:.1f} MiB free on its disk, less than the "
                f"{minimum / 2**20:.0f} MiB a run needs to record its results; free some space "
                f"or set {HOME_ENV} (and {DATABASE_URL_ENV}) elsewhere"
            )


def home_path() -> Path:
    """Where the state folder is, without creating it: for a look that must leave no trace."""
    return _resolved(os.environ.get(HOME_ENV, ".benchlib"), os.getcwd())


@lru_cache(maxsize=32)
def _resolved(path: str, cwd: str) -> Path:
    """Resolving walks every folder of the path (a syscall each): every database session asks
    for the home, ~10 per cell, and a 2,000-cell run spent ~2.6 s of its GIL time here."""
    return (Path(cwd) / path).resolve()


def database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home() / 'benchlib.store.db'}"


def database_file() -> Path | None:
    """The SQLite file the database is in (None for a server database), found without
    creating the home."""
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        folder = home_path()
        if folder.exists() and not folder.is_dir():
            raise _home_is_a_file(folder)
        return folder / "benchlib.store.db"
    path = url.partition("///")[2] if url.startswith("sqlite") else ""
    return Path(path) if path and path != ":memory:" else None


def api_url() -> str:
    """Where people reach the admin API and its pages, for the links a flow run shows (the
    Prefect form, its log and artifacts); default: the port `benchlib stack up` serves on."""
    port = os.environ.get("BENCHLIB_API_PORT", "8765")
    return (os.environ.get(API_URL_ENV) or f"http://127.0.0.1:{port}").rstrip("/")


def mlflow_ui_url() -> str:
    """The MLflow UI over the local store, when someone serves one (links to local runs)."""
    return os.environ.get("BENCHLIB_MLFLOW_UI_URL", "")


def default_mlflow_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def tracking_uri(mlflow_url: str) -> str:
    """The MLflow tracking URI of a run whose config says `mlflow_url`: that, else the
    environment's MLFLOW_TRACKING_URI (as every MLflow client reads it), else the sqlite store."""
    return mlflow_url or os.environ.get(MLFLOW_TRACKING_URI_ENV) or default_mlflow_uri()


def tracking_source(mlflow_url: str) -> str:
    """Which of tracking_uri's three places the URI came from, in words for `benchlib run`."""
    if mlflow_url:
        return "mlflow_url"
    if os.environ.get(MLFLOW_TRACKING_URI_ENV):
        return MLFLOW_TRACKING_URI_ENV
    return "the default sqlite store"


def mlflow_artifact_root() -> str:
    return (home() / "mlartifacts").as_uri()


def worker_identity() -> str:
    """name@host:pid of this process, recorded on each cell: with a work pool a run's cells
    are generated on several hosts, and this says which one (and which flow-run process)."""
    name = os.environ.get(WORKER_NAME_ENV, "local")
    return f"{name}@{socket.gethostname()}:{os.getpid()}"
