"""A benchmark run's life in the record: planned, running, completed (with failures) or failed."""

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from benchlib import bounds
from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError, Conflict, NotFound
from benchlib.evaluation.scorers import build_scorers
from benchlib.generation.preflight import preflight_models
from benchlib.pipeline import events
from benchlib.settings import MLFLOW_TRACKING_URI_ENV, check_free_space, database_file
from benchlib.spec import fixtures
from benchlib.spec.grid import CellPlan, expand_grid, select_grid
from benchlib.spec.suite import Suite, load_suite
from benchlib.store import db
from benchlib.store.db import session
from benchlib.store.records import (
    FINISHED,
    Candidate,
    Cell,
    CellStatus,
    Run,
    RunClaim,
    RunStatus,
    Score,
    utcnow,
)
from benchlib.tracking import outbox as tracking_outbox


class RunContext(BaseModel):
    """What every cell needs to know about its run (small: it is part of each task's cache key)."""

    run_id: str
    config: BenchmarkConfig


class RunPlan(BaseModel):
    context: RunContext
    cells: list[CellPlan]


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def experiment_name(config: BenchmarkConfig, suite_name: str) -> str:
    return config.experiment or f"benchlib-{suite_name}"


def check_baseline(config: BenchmarkConfig, suite_name: str) -> None:
    """A baseline the verdict could not use is bad input: say so before the run, not after an
    hour of generating."""
    if not config.baseline:
        return
    if config.baseline == "latest":
        experiment = experiment_name(config, suite_name)
        if previous_completed_run(experiment) is None:
            raise BenchlibError(
                f"baseline: 'latest' (got 'latest'): expected a completed run of experiment "
                f"{experiment!r} to compare with, and there is none yet; run once without a "
                "baseline first"
            )
        return
    try:
        base = get_run(config.baseline)
    except BenchlibError as exc:
        raise BenchlibError(
            f"baseline: {exc} (got {config.baseline!r}): expected a run id, a unique prefix of "
            "one, or 'latest' (see `benchlib runs`)"
        ) from None
    if base.suite != suite_name:
        raise BenchlibError(
            f"baseline: run {base.id} is of suite {base.suite!r} (got {config.baseline!r}): "
            f"expected a run of suite {suite_name!r}, whose cells this run's could pair with"
        )


def _taken(run_id: str) -> Conflict:
    return Conflict(f"run_id: a run {run_id!r} exists or is starting; pick another id")


def check_run(config: BenchmarkConfig, run_id: str) -> tuple[Suite, list[CellPlan]]:
    """Everything that can be wrong with a run before it starts; writes nothing. What can be
    checked without a model comes first: no server is started or called for a typo."""
    check_free_space()
    if config.run_id:
        with session() as s:
            if s.get(Run, config.run_id) is not None:
                raise _taken(config.run_id)
    suite = load_suite(config.suite)
    if config.fixtures:
        suite = fixtures.use_fixtures(suite)
    build_scorers(suite)
    select_grid(config, suite)
    check_baseline(config, suite.name)
    models = preflight_models(config)
    return suite, expand_grid(run_id, config, suite, models)


def claim_run_id(run_id: str) -> None:
    """Take a user-given run id before the run's flow starts (records.RunClaim): of two runs
    started with one id at once, the second is refused here, with no flow run made."""
    try:
        with session() as s:
            if s.get(Run, run_id) is not None:
                raise _taken(run_id)
            s.add(RunClaim(run_id=run_id))
    except IntegrityError:
        raise _taken(run_id) from None


def release_run_id(run_id: str) -> None:
    """Drop the claim once the run's flow has ended: the run's own row keeps the id taken if it
    was recorded, and a run that failed before that leaves the id free to use again."""
    with session() as s:
        s.exec(delete(RunClaim).where(col(RunClaim.run_id) == run_id))


def plan_run(config: BenchmarkConfig, flow_run_id: str | None = None) -> RunPlan:
    """Check the run, then record it in one transaction: the run, its cells (pending) and the
    MLflow parent run to create (queued: MLflow being down does not stop a run)."""
    run_id = config.run_id or new_run_id()
    suite, cells = check_run(config, run_id)
    rubric = suite.rubric.model_dump(mode="json")
    # The tracking URI is chosen once, here: a worker or `benchlib sync` in another
    # environment pushes where the run began.
    recorded = config.model_dump(mode="json")
    recorded["mlflow_url"] = config.mlflow_url or os.environ.get(MLFLOW_TRACKING_URI_ENV, "")
    with session() as s:
        s.add(
            Run(
                id=run_id,
                suite=suite.name,
                experiment=experiment_name(config, suite.name),
                config=recorded,
                rubric=rubric,
                rank_on=suite.spec.rank_on,
                n_cells=len(cells),
                flow_run_id=flow_run_id,
            )
        )
        s.flush()
        s.add_all(
            Cell(
                **cell.model_dump(
                    exclude={"steps", "n_candidates", "temperature", "seed"}
                    | {"max_tokens", "attempt_budget", "cache"}
                ),
                steps=[plan.step.name for plan in cell.steps],
                params=cell.params,
                identity=cell.identity,
            )
            for cell in cells
        )
        tracking_outbox.enqueue(s, run_id, "run", _mlflow_runs(config, suite, cells, rubric))
        if config.mlflow_traces != "off":  # the prompts go with the traces' inputs
            tracking_outbox.enqueue(s, run_id, "prompts", {"prompts": _prompts(suite, cells)})
    context = RunContext(run_id=run_id, config=config)
    events.emit("planned", run_id=run_id, cells=len(cells))
    return RunPlan(context=context, cells=cells)


def _mlflow_runs(
    config: BenchmarkConfig, suite: Suite, cells: list[CellPlan], rubric: dict[str, Any]
) -> dict[str, Any]:
    """The MLflow runs to make: the benchmark's (config as params) and one per (model, prompt
    version) with what makes its cells comparable as params."""
    groups: dict[tuple[str, str], CellPlan] = {}
    for cell in cells:
        groups.setdefault((cell.model, cell.prompt_version), cell)
    pending = "true" if config.judge == "human" else "false"
    return {
        "params": {**config.model_dump(mode="json"), "n_cells": len(cells)},
        "rubric": rubric,
        "tags": {"suite": suite.name, "status": RunStatus.pending.value, "judge_pending": pending},
        "groups": [
            {
                "model": model,
                "prompt": prompt,
                "params": {
                    "model": model,
                    "model_digest": cell.model_digest or "",
                    "prompt_version": prompt,
                    "prompt_hash": cell.prompt_hash,
                    "rubric_version": cell.rubric_version,
                    "rubric_hash": cell.rubric_hash,
                    **cell.params,
                },
            }
            for (model, prompt), cell in groups.items()
        ],
    }


def _prompts(suite: Suite, cells: list[CellPlan]) -> list[dict[str, Any]]:
    hashes = {cell.prompt_version: cell.prompt_hash for cell in cells}
    return [
        {
            "suite": suite.name,
            "version": version,
            "hash": prompt_hash,
            "steps": [
                step.model_dump(include={"name", "system", "user"})
                for step in suite.versions[version].steps
            ],
        }
        for version, prompt_hash in hashes.items()
    ]


def set_status(run_id: str, status: RunStatus, error: str | None = None) -> None:
    """The run's status, in the record and (through the outbox) as its MLflow runs' `status`
    tag; a finished run's report is rendered now, with its final status."""
    with session() as s:
        run = s.get_one(Run, run_id)
        run.status = status
        run.error = error
        if status == RunStatus.running and run.started_at is None:
            run.started_at = utcnow()
        if status in (*FINISHED, RunStatus.failed):
            run.finished_at = utcnow()
        update: dict[str, Any] = {"shared_tags": {"status": status.value}}
        if status == RunStatus.failed:
            # MLflow would otherwise show the parent run as running for good.
            update |= {"status": "FAILED", "tags": {"benchlib.error": (error or "")[:5000]}}
        elif status in FINISHED and run.leaderboard is not None:
            from benchlib.evaluation.leaderboard import Leaderboard
            from benchlib.evaluation.reports import render_html  # reports reads runs: imported late

            update = {
                **update,
                "artifacts": {
                    "report.html": render_html(run, Leaderboard.model_validate(run.leaderboard))
                },
                "status": "FINISHED",
            }
        tracking_outbox.enqueue(s, run_id, "update", update)


def check_run_id(run_id: str) -> str:
    """A run id or prefix fit to look up: not empty (every id starts with ''), not longer than
    an id can be, no control characters (they would be printed back as they are)."""
    if not run_id:
        raise BenchlibError("run id: empty: expected a run id or a unique prefix of one")
    if len(run_id) > bounds.MAX_RUN_ID:
        raise BenchlibError(
            f"run id: {len(run_id):,} characters (got {run_id[:20]!r}...): expected at most "
            f"{bounds.MAX_RUN_ID}"
        )
    if not run_id.isprintable():
        raise BenchlibError(f"run id: {run_id!r} has control characters: expected a run id")
    return run_id


def get_run(run_id: str) -> Run:
    """The run `run_id` names, or the only one it is a prefix of (`%` and `_` are characters
    here, not SQL wildcards). The CLI and the admin API both look runs up here."""
    check_run_id(run_id)
    if not db.exists():
        raise NotFound(f"no run {run_id!r} (no benchlib database yet: {database_file()})")
    with session() as s:
        run = s.get(Run, run_id)
        if run is None:
            # Accept a unique prefix, as people copy the first part of an id.
            prefix = col(Run.id).startswith(run_id, autoescape=True)
            matches = s.exec(select(Run).where(prefix).limit(2)).all()
            if not matches:
                raise NotFound(f"no run {run_id!r}")
            if len(matches) > 1:
                raise BenchlibError(f"run id {run_id!r} is ambiguous")
            run = matches[0]
        return run


def previous_completed_run(experiment: str, before: Run | None = None) -> Run | None:
    """The newest finished run of `experiment` (created before `before`, when given)."""
    query = select(Run).where(Run.experiment == experiment, col(Run.status).in_(FINISHED))
    if before is not None:
        query = query.where(Run.id != before.id, col(Run.created_at) < before.created_at)
    with session() as s:
        return s.exec(query.order_by(col(Run.created_at).desc())).first()


def list_runs(
    limit: int = 20,
    *,
    experiment: str | None = None,
    model: str | None = None,
    prompt: str | None = None,
    provider: str | None = None,
    status: RunStatus | None = None,
) -> list[Run]:
    """Newest first; a model, provider or prompt filter matches runs with a cell of that model
    spec, provider (`ollama` matches `ollama:*`) or prompt version."""
    query = select(Run)
    if experiment is not None:
        query = query.where(Run.experiment == experiment)
    if status is not None:
        query = query.where(Run.status == status)
    if model is not None:
        query = query.where(col(Run.id).in_(select(Cell.run_id).where(Cell.model == model)))
    if prompt is not None:
        query = query.where(
            col(Run.id).in_(select(Cell.run_id).where(Cell.prompt_version == prompt))
        )
    if provider is not None:
        of_provider = col(Cell.model).startswith(f"{provider}:", autoescape=True)
        query = query.where(col(Run.id).in_(select(Cell.run_id).where(of_provider)))
    with session() as s:
        return list(s.exec(query.order_by(col(Run.created_at).desc()).limit(limit)))


class ExperimentSummary(BaseModel):
    name: str
    runs: int
    last_run_id: str
    last_run_status: RunStatus
    last_run_at: datetime


def experiment_summaries() -> list[ExperimentSummary]:
    """Every experiment with its number of runs and its latest run, most recent first: one
    query, whatever the number of experiments. The ranking is a Core subquery: sqlmodel's
    select() is typed for at most four columns."""
    ranked = core_select(
        col(Run.experiment),
        col(Run.id),
        col(Run.status),
        col(Run.created_at),
        func.count().over(partition_by=Run.experiment).label("runs"),
        func.row_number()
        .over(partition_by=Run.experiment, order_by=col(Run.created_at).desc())
        .label("rank"),
    ).subquery()
    latest = select(*ranked.c).where(ranked.c.rank == 1).order_by(ranked.c.created_at.desc())
    with session() as s:
        rows = s.exec(latest).all()
    return [
        ExperimentSummary(
            name=row.experiment,
            runs=row.runs,
            last_run_id=row.id,
            last_run_status=row.status,
            last_run_at=row.created_at,
        )
        for row in rows
    ]


def cells_done(run_id: str) -> int:
    """Cells that finished (completed or failed): the run's progress."""
    with session() as s:
        query = select(func.count()).where(Cell.run_id == run_id, Cell.status != CellStatus.pending)
        return s.exec(query).one()


def run_cells(run_id: str) -> list[Cell]:
    with session() as s:
        return list(s.exec(select(Cell).where(Cell.run_id == run_id).order_by(col(Cell.index))))


def model_loads(run_id: str) -> tuple[int, float]:
    """How often the run loaded a model, and the seconds spent: the cell that had to load its
    model records the load time, the cells after it in the block record 0."""
    with session() as s:
        query = select(Cell.model_load_s).where(Cell.run_id == run_id, Cell.model_load_s > 0)
        times = list(s.exec(query))
    return len(times), sum(times)


def pending_cells(cells: list[CellPlan]) -> list[CellPlan]:
    """The cells not yet recorded as completed or failed: a block run again (its first worker
    died) generates only these."""
    with session() as s:
        query = select(Cell.id).where(
            col(Cell.id).in_([cell.id for cell in cells]), Cell.status == CellStatus.pending
        )
        pending = set(s.exec(query))
    return [cell for cell in cells if cell.id in pending]


def run_candidates(run_id: str) -> list[Candidate]:
    with session() as s:
        query = select(Candidate).where(Candidate.run_id == run_id)
        return list(s.exec(query.order_by(col(Candidate.cell_id), col(Candidate.index))))


def cell_page(
    run_id: str, offset: int, limit: int
) -> tuple[int, list[Cell], list[Candidate], list[Score]]:
    """A page of a run's cells in grid order (their number in all), with the candidates and
    scores of the cells on the page: what an admin panel's run detail lists."""
    with session() as s:
        total = s.exec(select(func.count()).select_from(Cell).where(Cell.run_id == run_id)).one()
        cells = list(
            s.exec(
                select(Cell)
                .where(Cell.run_id == run_id)
                .order_by(col(Cell.index))
                .offset(offset)
                .limit(limit)
            )
        )
        ids = [cell.id for cell in cells]
        candidates = list(
            s.exec(
                select(Candidate)
                .where(col(Candidate.cell_id).in_(ids))
                .order_by(col(Candidate.cell_id), col(Candidate.index), col(Candidate.step_index))
            )
        )
        scores = list(s.exec(select(Score).where(col(Score.cell_id).in_(ids))))
    return total, cells, candidates, scores
