"""The MLflow outbox: the database first, MLflow when it can.

Whatever MLflow should get is written as a `mlflowpending` row in the same transaction as the
results it mirrors, so a cell never waits for MLflow and an MLflow outage loses nothing. A
background thread (started once per process, at the first entry) pushes the rows in batches and
deletes them once MLflow has them; while the tracking server is down it backs off and retries.
`sync` pushes the backlog in the caller's thread (the end of a run, `benchlib sync`). A file
lock keeps two processes from pushing the same rows; pushes are idempotent (see
benchlib.tracking.mlflow_run), so a push cut short and repeated never duplicates an MLflow run.

Entries are of five kinds: `run` creates the run's MLflow run and its (model, prompt) runs,
`update` logs onto them, `prompts` registers the run's prompt versions, `cell` says a cell was
recorded or rescored, and `traces` asks for the traces of some cells (or all) to be written.
Cells carry no payload: a batch with any of a run's `cell` entries rewrites the run's cells
table once, from the database (benchlib.tracking.cell_table); traces are likewise built from the
database, one write per run and batch (benchlib.tracking.traces).

An entry a live server refuses for good is set aside with its error (see `set_aside`) and never
holds up the others; an unwritable artifact store costs only the artifacts, set aside too, while
params, metrics, tags, traces and assessments go on arriving.
"""

import fcntl
import logging
import os
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel
from sqlalchemy import event, func
from sqlmodel import Session, col, delete, select
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from benchlib.settings import database_url, home, tracking_uri
from benchlib.store.db import session
from benchlib.store.records import MlflowPending, Run, stored_id, utcnow
from benchlib.tracking.cell_table import cell_table

BATCH = 200
REST, REST_MAX_S = 9.0, 2.0
INTERVAL_S = 5.0
log = logging.getLogger(__name__)
Kind = Literal["run", "cell", "update", "traces", "prompts"]


def group_name(model: str, prompt: str) -> str:
    """A (model, prompt version) run's name: what the runs table, charts and compare view show."""
    return f"{model} · {prompt}"


class MlflowUnavailable(Exception):
    """The tracking server does not answer: stop pushing, retry later."""


def enqueue(
    s: Session, run_id: str, kind: Kind, payload: dict[str, Any], cell_id: str | None = None
) -> None:
    """Add an entry inside the caller's transaction; the pusher hears of it once it commits.

    A new run's parent entry does not wake it: it goes with the run's first cell (or the `sync`
    at the end). The pusher's first push imports MLflow (~1.5 s of CPU, holding the GIL); that
    way it overlaps the first generation rather than slowing the run's start-up.
    """
    s.add(MlflowPending(run_id=run_id, cell_id=cell_id, kind=kind, payload=payload))
    if kind != "run" and not event.contains(s, "after_commit", _wake_pusher):
        event.listen(s, "after_commit", _wake_pusher)


def behind(run_ids: list[str] | None = None) -> dict[str, int]:
    """Entries not yet in MLflow, per run (of these runs, or all; up-to-date runs are absent)."""
    with session() as s:
        query = select(MlflowPending.run_id, func.count()).where(
            col(MlflowPending.set_aside_at).is_(None)
        )
        if run_ids is not None:
            query = query.where(col(MlflowPending.run_id).in_(run_ids))
        return dict(s.exec(query.group_by(MlflowPending.run_id)).all())


def last_error(run_id: str) -> str | None:
    with session() as s:
        query = select(MlflowPending.last_error).where(
            MlflowPending.run_id == run_id, col(MlflowPending.last_error).is_not(None)
        )
        return s.exec(query.order_by(col(MlflowPending.id).desc()).limit(1)).first()


@contextmanager
def _push_lock() -> Iterator[None]:
    """One pusher at a time across processes (the worker, the CLI, another run)."""
    with open(home() / "mlflow-outbox.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reachable(uri: str) -> bool:
    """Tells an outage (retry the lot later) from an entry MLflow refuses (skip it)."""
    if not uri.startswith("http"):
        return True
    try:
        return httpx.get(f"{uri.rstrip('/')}/health", timeout=5).is_success
    except httpx.HTTPError:
        return False


MAX_ATTEMPTS = 3


class ArtifactsRefused(Exception):
    """The artifact store refused a write while the tracking server took the rest."""


class _Batch:
    """What a drain learned: MLflow ids to store, runs whose cells table was written, cells
    whose traces to write (None: all of the run's) and the entries asking, entries done,
    entries refused, entries set aside, artifact stores found unwritable (by tracking URI)."""

    def __init__(self) -> None:
        self.parents: dict[str, str] = {}
        self.tables: set[str] = set()
        self.traces: dict[str, set[str] | None] = {}
        self.traces_for: dict[str, list[int]] = defaultdict(list)
        self.done: list[int] = []
        self.errors: dict[int, str] = {}
        self.set_aside: dict[int, dict[str, Any] | None] = {}
        self.artifacts_down: dict[str, str] = {}


def _wants_traces(run: Run, kind: str) -> bool:
    mode = run.config.get("mlflow_traces", "final")
    return mode == "all" if kind == "cell" else mode != "off"


def _push(entry: MlflowPending, run: Run, batch: _Batch) -> None:
    # MLflow takes ~1.5 s to import: here the pusher thread pays it, in the background while
    # the run goes on, not every process that only plans, records or reads runs.
    from benchlib.tracking import mlflow_run as tracking

    uri = tracking_uri(run.config.get("mlflow_url", ""))
    payload = entry.payload
    if entry.kind == "run":
        batch.parents[run.id] = tracking.push_parent(
            uri, run.experiment, run.id, payload, entry.attempts > 1
        )
        _write_artifacts(uri, batch.parents[run.id], {"rubric.json": payload["rubric"]}, batch)
        return
    parent = batch.parents.get(run.id) or run.mlflow_run_id
    if parent is None:
        raise RuntimeError(f"run {run.id} has no MLflow run yet")
    if entry.kind == "prompts":
        tracking.register_prompts(uri, run.experiment, run.id, payload["prompts"])
    elif entry.kind in ("traces", "cell") and _wants_traces(run, entry.kind):
        _want_traces(batch, run.id, entry, payload.get("cells"))
    if entry.kind == "cell" and run.id not in batch.tables:
        # Read after the batch's entries, so it holds every cell they announce (and maybe more).
        batch.tables.add(run.id)
        _write_artifacts(uri, parent, {tracking.CELLS_TABLE: cell_table(run.id)}, batch)
    elif entry.kind == "update":
        # Artifacts before the final status (the report is there when the run shows finished),
        # the status whether or not the artifact store took them.
        rest = {key: value for key, value in payload.items() if key != "status"}
        tracking.push_update(uri, run.experiment, run.id, parent, rest)
        try:
            _write_artifacts(uri, parent, payload.get("artifacts", {}), batch)
        finally:
            if payload.get("status"):
                tracking.push_update(uri, run.experiment, run.id, parent, payload)


def _want_traces(batch: _Batch, run_id: str, entry: MlflowPending, cells: Any) -> None:
    """Traces are written once per run and batch, for every cell its entries name."""
    if entry.kind == "cell":
        cells = [entry.cell_id] if entry.cell_id else None
    known = batch.traces.get(run_id, set())
    batch.traces[run_id] = None if cells is None or known is None else known | set(cells)
    batch.traces_for[run_id].append(stored_id(entry))


def _write_artifacts(uri: str, mlflow_id: str, artifacts: dict[str, Any], batch: _Batch) -> None:
    """Artifacts, or ArtifactsRefused naming the store's error: a store found unwritable in a
    drain is not tried again in it (one failure, not one per entry)."""
    from benchlib.tracking import mlflow_run as tracking

    if not artifacts:
        return
    if uri in batch.artifacts_down:
        raise ArtifactsRefused(batch.artifacts_down[uri])
    try:
        tracking.write_artifacts(uri, mlflow_id, artifacts)
    except Exception as exc:
        if not _reachable(uri):
            raise
        batch.artifacts_down[uri] = f"artifact store refused a write: {type(exc).__name__}: {exc}"
        raise ArtifactsRefused(batch.artifacts_down[uri]) from exc


def _write_traces(runs: dict[str, Run], batch: _Batch) -> None:
    """Each run's traces of the batch in one write; a failure is its entries' failure."""
    from benchlib.tracking import mlflow_run as tracking
    from benchlib.tracking import traces as tracking_traces

    for run_id, cells in batch.traces.items():
        run = runs[run_id]
        uri = tracking_uri(run.config.get("mlflow_url", ""))
        try:
            experiment = tracking.experiment_id(uri, run.experiment)
            groups = tracking.group_runs(uri, run.experiment, run.id)
            tracking_traces.write(
                uri, experiment, tracking_traces.build(run, cells, experiment, groups)
            )
        except Exception as exc:
            for entry_id in batch.traces_for[run_id]:
                with suppress(ValueError):
                    batch.done.remove(entry_id)
                batch.errors[entry_id] = f"traces: {type(exc).__name__}: {exc}"[:2000]
            if not _reachable(uri):
                raise MlflowUnavailable(f"MLflow at {uri} is unreachable") from exc


def _drain_batch(run_id: str | None, skip: set[int]) -> int:
    """Push up to BATCH entries, oldest first; returns how many were taken (0: nothing left).

    Attempts are counted before pushing, so an entry cut short by a crash is looked up in
    MLflow, not created again, on its next push. An entry a live server refuses is left for
    the next drain, and set aside (with its error) once refused MAX_ATTEMPTS times; one whose
    artifacts alone were refused is set aside at once with only its artifacts left in it.
    """
    with _push_lock():
        with session() as s:
            query = select(MlflowPending).where(
                col(MlflowPending.id).not_in(skip), col(MlflowPending.set_aside_at).is_(None)
            )
            if run_id is not None:
                query = query.where(MlflowPending.run_id == run_id)
            entries = list(s.exec(query.order_by(col(MlflowPending.id)).limit(BATCH)))
            for entry in entries:
                entry.attempts += 1
            runs = {r.id: r for r in s.exec(select(Run).where(col(Run.id).in_(_run_ids(entries))))}
        batch = _Batch()
        outage = False
        try:
            for entry in entries:
                try:
                    _push(entry, runs[entry.run_id], batch)
                except ArtifactsRefused as exc:
                    _refused_artifacts(entry, batch, str(exc))
                    skip.add(stored_id(entry))
                    continue
                except Exception as exc:
                    batch.errors[stored_id(entry)] = f"{type(exc).__name__}: {exc}"[:2000]
                    uri = tracking_uri(runs[entry.run_id].config.get("mlflow_url", ""))
                    if not _reachable(uri):
                        raise MlflowUnavailable(f"MLflow at {uri} is unreachable") from exc
                    skip.add(stored_id(entry))  # refused by a live server: leave it, push the rest
                    continue
                batch.done.append(stored_id(entry))
            _write_traces(runs, batch)
        except MlflowUnavailable:
            outage = True
            raise
        finally:
            for entry in entries:
                if entry.id in batch.errors and entry.attempts >= MAX_ATTEMPTS and not outage:
                    batch.set_aside.setdefault(entry.id, None)
                if entry.id in batch.errors:
                    skip.add(entry.id)
            _record(batch)
    return len(entries)


def _refused_artifacts(entry: MlflowPending, batch: _Batch, error: str) -> None:
    """What the tracking server took is done; the artifacts wait, set aside, for a store that
    takes them (`benchlib sync --retry-set-aside`)."""
    entry_id = stored_id(entry)
    batch.errors[entry_id] = error[:2000]
    if entry.kind == "run":
        batch.set_aside[entry_id] = {"artifacts": {"rubric.json": entry.payload["rubric"]}}
    elif entry.kind == "update":
        batch.set_aside[entry_id] = {"artifacts": entry.payload.get("artifacts", {})}
    else:
        batch.set_aside[entry_id] = None  # a cell: its retry rewrites the table (and traces)
    if error not in _reported:
        _reported.add(error)
        log.warning("MLflow: %s; artifacts are set aside, everything else goes on", error)


_reported: set[str] = set()


def _run_ids(entries: list[MlflowPending]) -> set[str]:
    return {entry.run_id for entry in entries}


def _record(batch: _Batch) -> None:
    """One transaction: what was pushed leaves the outbox, the MLflow ids land on the rows,
    refused entries keep their error, entries refused for good are set aside."""
    with session() as s:
        if batch.done:
            s.exec(delete(MlflowPending).where(col(MlflowPending.id).in_(batch.done)))
        for entry_id, error in batch.errors.items():
            s.get_one(MlflowPending, entry_id).last_error = error
        for entry_id, left in batch.set_aside.items():
            entry = s.get_one(MlflowPending, entry_id)
            entry.set_aside_at = utcnow()
            if left is not None:
                entry.kind, entry.payload = "update", left
        for run_id, mlflow_id in batch.parents.items():
            s.get_one(Run, run_id).mlflow_run_id = mlflow_id


class SetAside(BaseModel):
    id: int
    run_id: str
    kind: str
    error: str
    set_aside_at: datetime


def set_aside(run_id: str | None = None) -> list[SetAside]:
    """Entries MLflow refused for good, oldest first."""
    with session() as s:
        query = select(MlflowPending).where(col(MlflowPending.set_aside_at).is_not(None))
        if run_id is not None:
            query = query.where(MlflowPending.run_id == run_id)
        return [
            SetAside(
                id=e.id,
                run_id=e.run_id,
                kind=e.kind,
                error=e.last_error or "",
                set_aside_at=e.set_aside_at,
            )
            for e in s.exec(query.order_by(col(MlflowPending.id)))
        ]


def retry_set_aside(run_id: str | None = None) -> int:
    """Put set-aside entries back in the queue (the store was fixed); returns how many."""
    with session() as s:
        query = select(MlflowPending).where(col(MlflowPending.set_aside_at).is_not(None))
        if run_id is not None:
            query = query.where(MlflowPending.run_id == run_id)
        entries = list(s.exec(query))
        for entry in entries:
            entry.set_aside_at = None
    return len(entries)


def _runs_behind(run_id: str | None) -> list[tuple[str, str]]:
    """(run id, tracking URI) of the runs with entries, oldest entry first."""
    with session() as s:
        query = select(MlflowPending.run_id).where(col(MlflowPending.set_aside_at).is_(None))
        if run_id is not None:
            query = query.where(MlflowPending.run_id == run_id)
        query = query.group_by(MlflowPending.run_id).order_by(func.min(MlflowPending.id))
        ids = list(s.exec(query))
        configs = dict(s.exec(select(Run.id, Run.config).where(col(Run.id).in_(ids))).all())
    return [(run, tracking_uri(configs[run].get("mlflow_url", ""))) for run in ids]


def _drain(
    run_id: str | None, resting: set[str] | frozenset[str] = frozenset(), paced: bool = False
) -> set[str]:
    """Push run by run until nothing is left but entries a live server refused; returns the
    tracking URIs found down (their runs wait; the others' go on). URIs in `resting` are not
    tried. `paced` (the background pusher): after each batch, rest REST times as long as it
    took (at most REST_MAX_S), so a push keeping up with a fast run takes a tenth of the time
    of the process it shares, though a batch costs more as the run grows (the cells table is
    written whole)."""
    down: set[str] = set()
    for run, uri in _runs_behind(run_id):
        if uri in resting or uri in down:
            continue
        skip: set[int] = set()
        try:
            while True:
                started = time.monotonic()
                if not _drain_batch(run, skip):
                    break
                if paced:
                    time.sleep(min(REST_MAX_S, REST * (time.monotonic() - started)))
        except MlflowUnavailable:
            down.add(uri)
    return down


def sync(run_id: str | None, timeout_s: float) -> int:
    """Push the backlog (of one run, or all), retrying outages with backoff until `timeout_s`
    has passed; returns how many entries are still behind."""

    def attempt() -> None:
        if down := _drain(run_id):
            raise MlflowUnavailable(f"MLflow unreachable at {', '.join(sorted(down))}")

    with suppress(RetryError):
        Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential_jitter(multiplier=0.5, max=10),
            retry=retry_if_exception_type(MlflowUnavailable),
        )(attempt)
    return sum(behind(None if run_id is None else [run_id]).values())


class _Pusher:
    """The background thread: drains when entries are committed, at most every INTERVAL_S (a
    drain costs about as much for one cell as for many), and retries a tracking server found
    down after a rest (1, 2, 4 … 30 s, jittered); runs logging elsewhere keep being pushed
    meanwhile. It serves the database it was woken for: should the process turn to another one
    (a test session ending), what is left waits for `benchlib sync`."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._database = ""

    def wake(self) -> None:
        with self._start:
            self._database = database_url()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="benchlib-mlflow-pusher", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        _yield_cpu()
        failures: dict[str, int] = {}
        retry_at: dict[str, float] = {}
        while True:
            rest = min(retry_at.values(), default=None)
            self._wake.wait(None if rest is None else max(0.0, rest - time.monotonic()))
            self._wake.clear()
            if database_url() != self._database:
                failures.clear()
                retry_at.clear()
                continue
            now = time.monotonic()
            try:
                down = _drain(None, {uri for uri, at in retry_at.items() if at > now}, True)
            except Exception:
                log.exception("MLflow push failed; the entries stay queued")
                continue
            for uri in [uri for uri, at in retry_at.items() if at <= now and uri not in down]:
                failures.pop(uri, None)
                retry_at.pop(uri)
            for uri in down:
                failures[uri] = failures.get(uri, 0) + 1
                pause = min(30.0, 2.0 ** (failures[uri] - 1)) * random.uniform(0.5, 1.0)
                retry_at[uri] = now + pause
                log.warning("MLflow at %s is down; next try in %.0f s", uri, pause)
            # What is committed meanwhile waits for the next drain: one push (and one rewrite of
            # the cells table) for the cells of INTERVAL_S, not one per cell.
            time.sleep(INTERVAL_S)


def _yield_cpu() -> None:
    """Lowers the calling thread's scheduling priority to the least. On a box where the model
    runs on the CPU, the push's MLflow work (its imports, the store's writes) took cores from the
    generation it should stay off; at nice 19 it gets what generation leaves idle, and a run's
    final drain, when nothing else runs, is as fast as before. Linux keeps a nice value per
    thread, so the cells' own threads keep theirs; elsewhere this changes nothing."""
    if sys.platform == "linux":
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


_pusher = _Pusher()


def _wake_pusher(_session: Session) -> None:
    _pusher.wake()
