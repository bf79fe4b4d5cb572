"""A run's cells as one table, a row per finished cell: what MLflow shows of them.

MLflow gets the table as `cells.json` on the run's MLflow run (MLflow's own table format, as
`mlflow.evaluate` logs its results), rewritten from the database whenever cells or their scores
change. One artifact per push instead of an MLflow run per cell: a child run cost MLflow ~16 ms
of CPU in its own store (~40 ms through a server), more than a cell costs benchlib itself.
"""

from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple

from sqlmodel import col, func, select

from benchlib.store.db import session
from benchlib.store.records import Candidate, Cell, CellStatus, Judgement, LLMCall, Score

COLUMNS = [
    "cell_id",
    "model",
    "prompt_version",
    "scenario_id",
    "status",
    "error",
    "wall_s",
    "model_load_s",
    "latency_mean_s",
    "prompt_tokens",
    "completion_tokens",
    "tokens_per_s",
    "cached_outputs",
    "provider_calls",
    "judge_pending",
    "outputs",
]


class _CellRow(NamedTuple):
    id: str
    model: str
    prompt_version: str
    scenario_id: str
    status: CellStatus
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    model_load_s: float
    steps: list[str]


class _CandidateRow(NamedTuple):
    id: int
    cell_id: str
    step: str
    error: str | None
    cached: bool
    text: str
    latency_s: float
    prompt_tokens: int
    completion_tokens: int


def cell_table(run_id: str) -> dict[str, Any]:
    """{"columns": [...], "data": [[...], ...]}: the fixed columns, then one per score name
    (a cell's mean; for chains also per step, `moderator.schema_validity`)."""
    with session() as s:
        # sqlmodel's select() is typed for at most four columns; SQLAlchemy takes any number.
        cells = [
            _CellRow._make(row)
            for row in s.exec(
                select(  # type: ignore[call-overload]
                    Cell.id,
                    Cell.model,
                    Cell.prompt_version,
                    Cell.scenario_id,
                    Cell.status,
                    Cell.error,
                    Cell.started_at,
                    Cell.finished_at,
                    Cell.model_load_s,
                    Cell.steps,
                )
                .where(Cell.run_id == run_id, Cell.status != CellStatus.pending)
                .order_by(Cell.index)
            )
        ]
        candidates = [
            _CandidateRow._make(row)
            for row in s.exec(
                select(  # type: ignore[call-overload]
                    Candidate.id,
                    Candidate.cell_id,
                    Candidate.step,
                    Candidate.error,
                    Candidate.cached,
                    Candidate.text,
                    Candidate.latency_s,
                    Candidate.prompt_tokens,
                    Candidate.completion_tokens,
                )
                .where(Candidate.run_id == run_id)
                .order_by(Candidate.cell_id, Candidate.index)
            )
        ]
        scores = s.exec(
            select(Score.cell_id, Score.candidate_id, Score.name, Score.value).where(
                Score.run_id == run_id
            )
        ).all()
        judged = set(s.exec(select(Judgement.candidate_id).where(Judgement.run_id == run_id)))
        calls = dict(
            s.exec(
                select(LLMCall.cell_id, func.count())
                .where(LLMCall.run_id == run_id)
                .group_by(col(LLMCall.cell_id))
            ).all()
        )
    by_cell: dict[str, list[_CandidateRow]] = defaultdict(list)
    step_of: dict[int, str] = {}
    for candidate in candidates:
        by_cell[candidate.cell_id].append(candidate)
        step_of[candidate.id] = candidate.step
    chains = {cell.id for cell in cells if len(cell.steps) > 1}
    score_values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell_id, candidate_id, name, value in scores:
        score_values[cell_id][name].append(value)
        if cell_id in chains:
            score_values[cell_id][f"{step_of[candidate_id]}.{name}"].append(value)
    names = sorted({name for values in score_values.values() for name in values})
    rows = []
    for cell in cells:
        produced = [c for c in by_cell[cell.id] if c.error is None]
        final = [c for c in produced if c.step == cell.steps[-1]]
        live = [c for c in produced if not c.cached]  # a cached output's latency is not ours
        generation_s = sum(c.latency_s for c in live)
        completion_tokens = sum(c.completion_tokens for c in produced)
        means = {n: sum(v) / len(v) for n, v in score_values[cell.id].items()}
        rows.append(
            [
                cell.id,
                cell.model,
                cell.prompt_version,
                cell.scenario_id,
                cell.status.value,
                cell.error,
                _seconds(cell.started_at, cell.finished_at),
                cell.model_load_s,
                generation_s / len(live) if live else None,
                sum(c.prompt_tokens for c in produced),
                completion_tokens,
                sum(c.completion_tokens for c in live) / generation_s if generation_s else None,
                len(produced) - len(live),
                calls.get(cell.id, 0),
                any(c.id not in judged for c in final),
                [c.text for c in final],
                *(means.get(name) for name in names),
            ]
        )
    return {"columns": COLUMNS + names, "data": rows}


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 3)
