"""MLflow: one experiment per `experiment`, a parent run per benchmark run, a child run per cell.

The database is the durable record; MLflow is where people browse. Everything for a cell goes
in one `log_batch` plus its artifacts (real files, not tags: tags are cut at 8000 characters).
"""

import json
import time
from functools import cache
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from benchlib.settings import default_mlflow_uri, mlflow_artifact_root


def tracking_uri(mlflow_url: str) -> str:
    return mlflow_url or default_mlflow_uri()


@cache
def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    mlflow = client(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A local store keeps artifacts beside it under .benchlib/; a server decides for itself.
    location = mlflow_artifact_root() + f"/{name}" if uri.startswith("sqlite") else None
    return mlflow.create_experiment(name, artifact_location=location)


def _now_ms() -> int:
    return int(time.time() * 1000)


def start_parent_run(
    uri: str, experiment_id: str, run_id: str, params: dict[str, Any], rubric: dict[str, Any]
) -> str:
    mlflow = client(uri)
    run = mlflow.create_run(
        experiment_id,
        run_name=f"benchmark-{run_id}",
        tags={"benchlib.run_id": run_id, "benchlib.kind": "benchmark"},
    )
    mlflow.log_batch(
        run.info.run_id,
        params=[Param(key, str(value)[:6000]) for key, value in params.items()],
        tags=[RunTag("rubric_version", rubric["version"])],
    )
    mlflow.log_dict(run.info.run_id, rubric, "rubric.json")
    return run.info.run_id


def log_cell_run(
    uri: str,
    experiment_id: str,
    parent_id: str,
    name: str,
    params: dict[str, Any],
    tags: dict[str, str],
    metrics: dict[str, float],
    artifacts: dict[str, Any],
) -> str:
    """A finished child run: params, tags and metrics in one batch, then the JSON artifacts."""
    mlflow = client(uri)
    run = mlflow.create_run(
        experiment_id, tags={MLFLOW_PARENT_RUN_ID: parent_id, MLFLOW_RUN_NAME: name, **tags}
    )
    now = _now_ms()
    mlflow.log_batch(
        run.info.run_id,
        params=[Param(key, str(value)) for key, value in params.items()],
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
    )
    for file_name, content in artifacts.items():
        mlflow.log_dict(run.info.run_id, content, file_name)
    mlflow.set_terminated(run.info.run_id)
    return run.info.run_id


def log_metrics(
    uri: str, mlflow_run_id: str, metrics: dict[str, float], tags: dict[str, str] | None = None
) -> None:
    now = _now_ms()
    client(uri).log_batch(
        mlflow_run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        tags=[RunTag(key, value) for key, value in (tags or {}).items()],
    )


def finish_parent_run(
    uri: str,
    parent_id: str,
    status: str,
    metrics: dict[str, float],
    leaderboard: dict[str, Any],
    report_html: str,
) -> None:
    mlflow = client(uri)
    log_metrics(uri, parent_id, metrics)
    mlflow.log_text(parent_id, json.dumps(leaderboard, indent=2), "leaderboard.json")
    mlflow.log_text(parent_id, report_html, "report.html")
    mlflow.set_terminated(parent_id, status="FINISHED" if status == "completed" else "FAILED")
