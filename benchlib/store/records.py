"""The system of record: runs, cells, candidates, LLM calls and scores (SQLModel tables)."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import JSON, Column, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunStatus(StrEnum):
    pending = "pending"
    running = "running"
    awaiting_judge = "awaiting_judge"
    scoring = "scoring"
    completed = "completed"
    completed_with_failures = "completed_with_failures"  # some cells failed, the run finished
    failed = "failed"


# Runs whose grid ran to the end: usable as baselines, re-scored after new judgements.
FINISHED = (RunStatus.completed, RunStatus.completed_with_failures)


class CellStatus(StrEnum):
    pending = "pending"
    completed = "completed"
    failed = "failed"


class _Numbered(Protocol):
    id: int | None


def stored_id(row: _Numbered) -> int:
    """A row's database id: the column is optional only so a new row can be built before the
    database numbers it, so every row read back or flushed has one."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id: it was never flushed")
    return row.id


def status_type(statuses: type[StrEnum]) -> Enum:
    """Statuses as plain text (no PostgreSQL ENUM type): a new status needs no migration."""
    return Enum(statuses, native_enum=False, length=32)


class Run(SQLModel, table=True):
    id: str = Field(primary_key=True)
    suite: str
    experiment: str
    config: dict[str, Any] = Field(sa_column=Column(JSON))
    rubric: dict[str, Any] = Field(
        sa_column=Column(JSON), description="The rubric as planned: judging never needs the suite."
    )
    rank_on: str = Field(
        "final",
        sa_column_kwargs={"server_default": "final"},
        description="The suite's rank_on as planned: which step's outputs rows are ranked on.",
    )
    status: RunStatus = Field(default=RunStatus.pending, sa_type=status_type(RunStatus))
    error: str | None = None
    n_cells: int = 0
    flow_run_id: str | None = None
    mlflow_run_id: str | None = None
    leaderboard: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    eval_report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    scored_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Cell(SQLModel, table=True):
    """One (model, prompt version, scenario) of a run, with everything that makes it comparable."""

    __table_args__ = (Index("ix_cell_run_index", "run_id", "index"),)

    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    index: int
    model: str
    model_size_b: float | None = None
    model_digest: str | None = None
    prompt_version: str
    prompt_hash: str
    scenario_id: str
    scenario_hash: str
    rubric_version: str
    rubric_hash: str
    params: dict[str, Any] = Field(sa_column=Column(JSON))
    identity: str = Field(index=True, description="Hash of everything above but the run.")
    scenario_vars: dict[str, Any] = Field(sa_column=Column(JSON))
    steps: list[str] = Field(sa_column=Column(JSON), description="Step names, in chain order.")
    status: CellStatus = Field(default=CellStatus.pending, sa_type=status_type(CellStatus))
    error: str | None = None
    model_load_s: float = 0.0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = Field(
        default=None,
        description="name@host:pid of the process that generated it (pool runs span hosts).",
    )


class Candidate(SQLModel, table=True):
    """One output: attempt `index` of the cell, at one step of its chain (`output` if single)."""

    # run_candidates, scoring and collect's re-execution read a run's candidates in this order.
    __table_args__ = (Index("ix_candidate_run_cell_index", "run_id", "cell_id", "index"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    cell_id: str = Field(foreign_key="cell.id", index=True)
    index: int
    step: str = "output"
    step_index: int = 0
    seed: int
    messages: list[dict[str, Any]] = Field(sa_column=Column(JSON))
    error: str | None = Field(default=None, description="Why this step produced no output.")
    cached: bool = Field(
        default=False, description="Answered from the response cache, no provider call."
    )
    text: str
    parsed: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    parse_error: str | None = None
    output_hash: str
    finish_reason: str = ""
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMCall(SQLModel, table=True):
    """The traceability log: every HTTP attempt, retries and failures included."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    cell_id: str = Field(foreign_key="cell.id", index=True)
    candidate_index: int
    step: str = "output"
    attempt: int
    model: str
    started_at: datetime
    latency_s: float
    status_code: int | None = None
    error: str | None = None
    request: dict[str, Any] = Field(sa_column=Column(JSON))
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Score(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    cell_id: str = Field(foreign_key="cell.id", index=True)
    candidate_id: int = Field(foreign_key="candidate.id", index=True)
    name: str
    value: float
    explanation: str = ""
    version: str = Field(description="scoring-v1 for scorers; rubric version@hash for composites.")
    formula: str | None = Field(
        default=None, description="For composites: the weighted sum evaluated."
    )


class Judgement(SQLModel, table=True):
    """One judge's scores for one output, under one rubric version."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    candidate_id: int = Field(foreign_key="candidate.id", index=True)
    judge: str
    rubric_version: str
    rubric_hash: str
    scores: dict[str, float] = Field(
        sa_column=Column(JSON), description="Criterion (or human-judged flag) -> value."
    )
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class PairJudgement(SQLModel, table=True):
    """One judge's choice between two blind outputs for one scenario (`judge_mode: pairwise`):
    `candidate_a` was shown as A, `candidate_b` as B."""

    __tablename__ = "pairjudgement"
    __table_args__ = (UniqueConstraint("run_id", "pair_id", "judge"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    pair_id: str
    candidate_a: int = Field(foreign_key="candidate.id")
    candidate_b: int = Field(foreign_key="candidate.id")
    judge: str
    choice: str = Field(description="a, b or tie.")
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class CachedResponse(SQLModel, table=True):
    """A provider's complete answer under its content-addressed key (see
    benchlib.generation.cache)."""

    key: str = Field(primary_key=True)
    model: str = Field(index=True)
    result: dict[str, Any] = Field(sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Fixture(SQLModel, table=True):
    """One version of a stored scenario. An update adds a version, a delete only marks them all:
    a run that used a version can always show what it was."""

    __table_args__ = (UniqueConstraint("suite", "scenario_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    suite: str = Field(index=True, description="The suite's name (suite.yaml `name`).")
    scenario_id: str
    version: int
    vars: dict[str, Any] = Field(sa_column=Column(JSON))
    hash: str = Field(description="Content hash of `vars`, checked when a run uses it.")
    created_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None


class MlflowPending(SQLModel, table=True):
    """What MLflow has yet to receive (the outbox): written in the same transaction as the
    results it mirrors, deleted once pushed. See benchlib.tracking.outbox."""

    __tablename__ = "mlflowpending"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    cell_id: str | None = Field(default=None, foreign_key="cell.id")
    kind: str = Field(
        description="run: create the MLflow run; update: log onto it; cell: its cells table is old."
    )
    payload: dict[str, Any] = Field(sa_column=Column(JSON))
    attempts: int = 0
    last_error: str | None = None
    set_aside_at: datetime | None = Field(
        default=None, description="When MLflow refused it for good: no longer pushed until retried."
    )
    created_at: datetime = Field(default_factory=utcnow)


class GpuLease(SQLModel, table=True):
    """The lease of the `gpu` slot a flow run holds, kept while it is held: if the process dies,
    `benchlib resume` frees the slot at once (an ephemeral Prefect server never expires leases).
    Kept here rather than in a Prefect variable: the variable's writes raced the Prefect server's
    own SQLite writes and each lost race cost a 2 s client retry."""

    __tablename__ = "gpulease"

    flow_run_id: str = Field(primary_key=True)
    lease_id: str
    created_at: datetime = Field(default_factory=utcnow)


class RunClaim(SQLModel, table=True):
    """A run id given by the user (`run_id`), taken before the run's flow starts: two runs
    started with the same id at once both pass the check that no run has it, and only one can
    insert this row; the other is refused before it makes a flow run."""

    __tablename__ = "runclaim"

    run_id: str = Field(primary_key=True)
    claimed_at: datetime = Field(default_factory=utcnow)
