"""MLflow: one experiment per `experiment`, an MLflow run per benchmark run, its cells as a table.

The database is the durable record; MLflow is where people browse. Nothing here is called on a
cell's critical path: benchlib.tracking.outbox queues what MLflow should get and pushes it from
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
from mlflow.entities.model_registry import PromptVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracing.constant import TraceTagKey
from mlflow.tracing.utils.prompt import update_linked_prompts_tag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from benchlib.settings import mlflow_artifact_root
from benchlib.tracking.outbox import group_name

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
GROUP_TAG = "benchlib.group"
PROMPT_HASH_TAG = "benchlib.prompt_hash"
LINKED_PROMPTS_TAG = TraceTagKey.LINKED_PROMPTS
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


def write_artifacts(uri: str, mlflow_id: str, artifacts: dict[str, Any]) -> None:
    """All files in one upload call; JSON files are dumped, text (HTML) is written as is."""
    if not artifacts:
        return
    with tempfile.TemporaryDirectory(prefix="benchlib-mlflow-") as folder:
        for name, content in artifacts.items():
            text = content if isinstance(content, str) else json.dumps(content, indent=2)
            Path(folder, name).write_text(text)
        repository = get_artifact_repository(_artifact_uri(uri, mlflow_id), tracking_uri=uri)
        repository.log_artifacts(folder)


def _params(values: dict[str, Any]) -> list[Param]:
    return [Param(key, str(value)[:6000]) for key, value in values.items()]


def push_parent(
    uri: str, experiment: str, run_id: str, payload: dict[str, Any], retried: bool
) -> str:
    """The benchmark run's MLflow run (config as params) and, nested in it, one run per
    (model, prompt version) with its identity as params. Artifacts are the caller's: a store
    that cannot take them must not keep the runs from being made. The cells table is announced
    as a table from the start, so MLflow's UI shows it as one."""
    experiment_id_ = experiment_id(uri, experiment)
    identity = {RUN_TAG: run_id, KIND_TAG: "benchmark"}
    tags = {
        MLFLOW_RUN_NAME: f"benchmark-{run_id}",
        MLFLOW_LOGGED_ARTIFACTS: json.dumps([{"path": CELLS_TABLE, "type": "table"}]),
        **payload.get("tags", {}),
    }
    mlflow_id, _ = _create_run(uri, experiment_id_, tags, identity, retried)
    client(uri).log_batch(
        mlflow_id,
        params=_params(payload["params"]),
        tags=[RunTag("rubric_version", payload["rubric"]["version"])],
    )
    for group in payload.get("groups", []):
        name = group_name(group["model"], group["prompt"])
        child_tags = {
            MLFLOW_RUN_NAME: name,
            MLFLOW_PARENT_RUN_ID: mlflow_id,
            **payload.get("tags", {}),
        }
        child_identity = {**identity, KIND_TAG: "group", GROUP_TAG: name}
        child, _ = _create_run(uri, experiment_id_, child_tags, child_identity, retried)
        client(uri).log_batch(child, params=_params(group["params"]))
        _children(uri, experiment_id_, run_id)[name] = child
    return mlflow_id


@cache
def _children(uri: str, experiment: str, run_id: str) -> dict[str, str]:
    """A benchmark run's (model, prompt) runs by name: looked up once per process, filled in
    as they are made."""
    query = f"tags.`{RUN_TAG}` = '{run_id}' and tags.`{KIND_TAG}` = 'group'"
    found = client(uri).search_runs([experiment], query, max_results=1000)
    return {run.data.tags[GROUP_TAG]: run.info.run_id for run in found}


def group_runs(uri: str, experiment: str, run_id: str) -> dict[str, str]:
    return _children(uri, experiment_id(uri, experiment), run_id)


@cache
def _artifact_uri(uri: str, mlflow_id: str) -> str:
    """A run's artifact location never changes: asked once per process, not at every push."""
    return client(uri).get_run(mlflow_id).info.artifact_uri


def push_update(uri: str, experiment: str, run_id: str, mlflow_id: str, payload: dict) -> None:
    """Metrics and tags onto the run (`tags`), onto its (model, prompt) runs (`groups`, by
    name) and onto them all (`shared_tags`: status, judge_pending), and, when the payload says
    so, the final status of them all. Pushing it again is harmless. Artifacts are the
    caller's (see write_artifacts)."""
    mlflow = client(uri)
    now = _now_ms()
    shared = payload.get("shared_tags", {})
    _log(mlflow, mlflow_id, payload.get("metrics", {}), {**payload.get("tags", {}), **shared}, now)
    groups = payload.get("groups", {})
    wanted = groups or shared or payload.get("status")
    children = group_runs(uri, experiment, run_id) if wanted else {}
    for name, child in children.items():
        values = groups.get(name, {})
        _log(mlflow, child, values.get("metrics", {}), {**shared, **values.get("tags", {})}, now)
    if payload.get("status"):
        for child in children.values():
            mlflow.set_terminated(child, status=payload["status"])
        mlflow.set_terminated(mlflow_id, status=payload["status"])


def _log(mlflow: MlflowClient, run: str, metrics: dict, tags: dict, now: int) -> None:
    if metrics or tags:
        mlflow.log_batch(
            run,
            metrics=[
                Metric(metric_name(key), float(value), now, 0) for key, value in metrics.items()
            ],
            tags=[RunTag(key, str(value)) for key, value in tags.items()],
        )


def register_prompts(uri: str, experiment: str, run_id: str, prompts: list[dict]) -> None:
    """Each prompt version in MLflow's prompt registry (one prompt per chain step), linked to
    the runs that used it. A version whose hash is registered already is not registered again:
    the registry's versions then mean changes of the text."""
    mlflow = client(uri)
    children = group_runs(uri, experiment, run_id)
    linked: list[tuple[str, PromptVersion]] = []
    for prompt in prompts:
        for step in prompt["steps"]:
            name = prompt_name(prompt["suite"], prompt["version"], step["name"], prompt["steps"])
            version = _registered(uri, name, prompt["hash"])
            if version is None:
                template = [
                    *([{"role": "system", "content": step["system"]}] if step["system"] else []),
                    {"role": "user", "content": step["user"]},
                ]
                version = mlflow.register_prompt(
                    name=name,
                    template=template,
                    commit_message=f"benchlib run {run_id}",
                    tags={PROMPT_HASH_TAG: prompt["hash"], "suite": prompt["suite"]},
                )
            linked.extend(
                (child, version)
                for group, child in children.items()
                if group.endswith(f" · {prompt['version']}")
            )
    # MlflowClient.link_prompt_version_to_run reads the run from the process's global tracking
    # URI, not the client's (MLflow 3.17): the same tag, set through this client.
    for child in {child for child, _ in linked}:
        versions = [version for run, version in linked if run == child]
        current = mlflow.get_run(child).data.tags.get(LINKED_PROMPTS_TAG)
        mlflow.set_tag(child, LINKED_PROMPTS_TAG, update_linked_prompts_tag(current, versions))


def prompt_name(suite: str, version: str, step: str, steps: list[dict]) -> str:
    """`tips-v1`, or `debate-v2-bull` for a step of a chain: MLflow allows letters, digits,
    `-`, `_` and `.` in a prompt's name."""
    raw = f"{suite}-{version}" + (f"-{step}" if len(steps) > 1 else "")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def _registered(uri: str, name: str, prompt_hash: str) -> PromptVersion | None:
    """The registered version of `name` carrying this hash, or None."""
    mlflow = client(uri)
    try:
        versions = list(mlflow.search_prompt_versions(name))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return next((v for v in versions if v.tags.get(PROMPT_HASH_TAG) == prompt_hash), None)
