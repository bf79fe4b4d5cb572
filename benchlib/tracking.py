"""MLflow: one experiment per `experiment`, an MLflow run per benchmark run, its cells as a table.

The database is the durable record; MLflow is where people browse. Nothing here is called on a
cell's critical path: benchlib.tracking_outbox queues what MLflow should get and pushes it from
a background thread (or `benchlib sync`). Every push is idempotent: a run is looked up by its
benchlib tags before it is created, so a retried push never makes a second MLflow run.
"""

import json
import os
import re
import sqlite3
import tempfile
import time
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS, MLFLOW_RUN_NAME

from benchlib.settings import mlflow_artifact_root

# MLflow retries a failed request for minutes by default; the outbox retries instead, so an
# outage costs one failed request, not a stalled pusher. Against a server MLflow also prints
# two links per finished run (over the CLI's progress bar), fetching the run to do so.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
RUN_TAG = "benchlib.run_id"
KIND_TAG = "benchlib.kind"
CELLS_TABLE = "cells.json"


@cache
def client(uri: str) -> MlflowClient:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    mlflow = MlflowClient(tracking_uri=uri)
    if uri.startswith("sqlite:///"):
        _wal(mlflow, uri.removeprefix("sqlite:///"))
    return mlflow


def _wal(mlflow: MlflowClient, path: str) -> None:
    """MLflow's sqlite store commits in rollback-journal mode, several syncs per call; WAL
    (a property of the file, kept once set) pushes ~1.4× faster here and lets readers (the UI)
    read while the pusher writes. The store is created first, so it is not ours half-made."""
    mlflow.search_experiments(max_results=1)
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


@cache
def experiment_id(uri: str, name: str) -> str:
    mlflow = client(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A local store keeps artifacts beside it under .benchlib/; a server decides for itself.
    location = mlflow_artifact_root() + f"/{name}" if uri.startswith("sqlite") else None
    return mlflow.create_experiment(name, artifact_location=location)


def metric_name(name: str) -> str:
    """`name` as MLflow takes it: every character it refuses in a metric name (model ids carry
    `@`, say) made `_`, and no path part empty, `.` or `..` (MLflow refuses a name that a
    path normalisation would change). One refused name fails the whole update, again at every
    retry; this is applied as the update is pushed, so entries queued before are mended too."""
    cleaned = re.sub(r"[^\w\-. :/]", "_", name)
    parts = cleaned.split("/")
    return "/".join(part if part.strip(".") else part.replace(".", "_") or "_" for part in parts)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _create_run(
    uri: str, experiment: str, tags: dict[str, str], identity: dict[str, str], retried: bool
) -> tuple[str, str]:
    """(run id, artifact uri) of a new run tagged with `identity` — or of the one an earlier,
    interrupted push created. Only an entry tried before can have left one: look up only then."""
    mlflow = client(uri)
    if retried:
        query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in identity.items())
        found = mlflow.search_runs([experiment], query, max_results=1)
        if found:
            return found[0].info.run_id, found[0].info.artifact_uri
    run = mlflow.create_run(experiment, tags={**identity, **tags})
    return run.info.run_id, run.info.artifact_uri


def _write_artifacts(uri: str, artifact_uri: str, artifacts: dict[str, Any]) -> None:
    """All files in one upload call; JSON files are dumped, text (HTML) is written as is."""
    if not artifacts:
        return
    with tempfile.TemporaryDirectory(prefix="benchlib-mlflow-") as folder:
        for name, content in artifacts.items():
            text = content if isinstance(content, str) else json.dumps(content, indent=2)
            Path(folder, name).write_text(text)
        get_artifact_repository(artifact_uri, tracking_uri=uri).log_artifacts(folder)


def push_parent(uri: str, experiment: str, run_id: str, payload: dict[str, Any], retried: bool):
    """The benchmark run's MLflow run: config as params, the rubric as an artifact. Its cells
    table is announced as a table from the start, so MLflow's UI shows it as one."""
    mlflow_id, artifact_uri = _create_run(
        uri,
        experiment_id(uri, experiment),
        {
            MLFLOW_RUN_NAME: f"benchmark-{run_id}",
            MLFLOW_LOGGED_ARTIFACTS: json.dumps([{"path": CELLS_TABLE, "type": "table"}]),
        },
        {RUN_TAG: run_id, KIND_TAG: "benchmark"},
        retried,
    )
    client(uri).log_batch(
        mlflow_id,
        params=[Param(key, str(value)[:6000]) for key, value in payload["params"].items()],
        tags=[RunTag("rubric_version", payload["rubric"]["version"])],
    )
    _write_artifacts(uri, artifact_uri, {"rubric.json": payload["rubric"]})
    return mlflow_id


@cache
def _artifact_uri(uri: str, mlflow_id: str) -> str:
    """A run's artifact location never changes: asked once per process, not at every push."""
    return client(uri).get_run(mlflow_id).info.artifact_uri


def push_update(uri: str, mlflow_id: str, payload: dict[str, Any]) -> None:
    """Metrics and tags onto the run, artifacts (replacing files of the same name: the cells
    table), and, when the payload says so, its final status. Pushing it again is harmless."""
    mlflow = client(uri)
    now = _now_ms()
    metrics = payload.get("metrics", {})
    tags = payload.get("tags", {})
    if metrics or tags:
        mlflow.log_batch(
            mlflow_id,
            metrics=[
                Metric(metric_name(key), float(value), now, 0) for key, value in metrics.items()
            ],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
    if payload.get("artifacts"):
        _write_artifacts(uri, _artifact_uri(uri, mlflow_id), payload["artifacts"])
    if payload.get("status"):
        mlflow.set_terminated(mlflow_id, status=payload["status"])
