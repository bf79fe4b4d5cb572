"""Running one cell: n candidates from one model for one rendered prompt, recorded as a unit.

The database gets the cell, its candidates, every HTTP attempt and the outbox entry that puts the
cell in MLflow's cells table (pushed off the cell's path) in one transaction. A provider that keeps
failing fails the cell (with its message), not the run.
"""

from typing import Any

import jinja2
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import select

from benchlib.errors import ProviderError
from benchlib.evaluation.parsing import parse_json_output
from benchlib.generation import cache
from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.providers import (
    AttemptBudget,
    CallRecord,
    ChatRequest,
    ChatResult,
    Provider,
    provider_for,
)
from benchlib.pipeline import events
from benchlib.settings import worker_identity
from benchlib.spec.grid import CellPlan
from benchlib.spec.hashing import content_hash
from benchlib.store.db import session
from benchlib.store.records import Candidate, Cell, CellStatus, LLMCall, utcnow
from benchlib.store.runs import RunContext
from benchlib.tracking import outbox as tracking_outbox


class CellOutcome(BaseModel):
    cell_id: str
    status: CellStatus
    n_candidates: int
    error: str | None = None


def _output(cell: CellPlan, index: int, step_index: int, **fields: Any) -> Candidate:
    return Candidate(
        run_id=cell.run_id,
        cell_id=cell.id,
        index=index,
        step=cell.steps[step_index].step.name,
        step_index=step_index,
        seed=cell.seed + index,
        **fields,
    )


def _candidate(
    cell: CellPlan, index: int, step_index: int, messages: list, result: ChatResult
) -> Candidate:
    parsed, parse_error = parse_json_output(result.text)
    return _output(
        cell,
        index,
        step_index,
        messages=messages,
        text=result.text,
        parsed=parsed,
        parse_error=parse_error,
        output_hash=content_hash(result.text),
        finish_reason=result.finish_reason,
        latency_s=result.latency_s,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )


def _not_run(cell: CellPlan, index: int, step_index: int, reason: str) -> Candidate:
    return _output(
        cell, index, step_index, messages=[], error=reason, text="", output_hash=content_hash("")
    )


def _call_row(cell: CellPlan, index: int, step: str, record: CallRecord) -> LLMCall:
    return LLMCall(
        run_id=cell.run_id,
        cell_id=cell.id,
        candidate_index=index,
        step=step,
        model=cell.model,
        **record.model_dump(),
    )


class NotCached(Exception):
    """A cell replayed from the cache needs an answer the cache does not hold."""


def _run_chain(
    provider: Provider | None,
    cell: CellPlan,
    index: int,
    budget: AttemptBudget,
    candidates: list[Candidate],
    calls: list[LLMCall],
) -> float:
    """Attempt `index` through every step; each step sees the parsed outputs before it. Returns
    the seconds spent loading the model: it is loaded at the first answer not in the cache, so
    a block the cache answers whole never loads it.

    A step whose template reads something an earlier output lacks fails the rest of the chain
    (recorded, with the reason); a provider failure propagates and fails the cell. Without a
    provider (a replay from the cache), an answer not in the cache raises NotCached.
    """
    load_s = 0.0
    context: dict[str, Any] = {**cell.scenario_vars, "steps": {}}
    for step_index, plan in enumerate(cell.steps):
        try:
            messages = plan.step.render(context)
        except jinja2.TemplateRuntimeError as exc:
            reason = (
                f"step {plan.step.name!r} not run: its template reads what earlier output "
                f"lacks ({exc})"
                if isinstance(exc, jinja2.UndefinedError)
                # The sandbox refused what an output led it to read (a `_` attribute).
                else f"step {plan.step.name!r} not run: the template sandbox refused it ({exc})"
            )
            candidates.extend(
                _not_run(cell, index, later, reason) for later in range(step_index, len(cell.steps))
            )
            return load_s
        request = ChatRequest(
            messages=messages,
            temperature=cell.temperature,
            seed=cell.seed + index,
            max_tokens=cell.max_tokens,
            response_schema=plan.response_schema,
        )
        key = cache.cache_key(cell.model, cell.model_digest, request, index)
        result = cache.lookup(key) if cell.cache == "use" else None
        cached = result is not None
        if result is None:
            if provider is None:
                raise NotCached(key)
            load_s += provider.load()
            attempts: list[CallRecord] = []
            try:
                result = provider.chat(request, budget, attempts)
            finally:
                calls.extend(_call_row(cell, index, plan.step.name, a) for a in attempts)
            if cell.cache != "off":
                # At once: a crash later in the cell loses no answer.
                cache.store(key, cell.model, request, result)
        candidate = _candidate(cell, index, step_index, messages, result)
        candidate.cached = cached
        candidates.append(candidate)
        context["steps"][plan.step.name] = candidate.parsed
    return load_s


def recorded_outcome(cell_id: str) -> CellOutcome | None:
    """The outcome of a cell already recorded (its one transaction committed), else None."""
    with session() as s:
        row = s.get_one(Cell, cell_id)
        if row.status == CellStatus.pending:
            return None
        n = s.exec(select(func.count()).where(Candidate.cell_id == cell_id)).one()
        return CellOutcome(cell_id=cell_id, status=row.status, n_candidates=n, error=row.error)


def run_cell(plan: RunContext, cell: CellPlan) -> CellOutcome:
    # Blocks skip recorded cells when they start; a cell recorded since (by a block run again
    # elsewhere while this one was thought dead) must not be generated and logged twice.
    if done := recorded_outcome(cell.id):
        return done
    return _collect(provider_for(ModelSpec.parse(cell.model), plan.config), plan, cell)


def record_cached(plan: RunContext, cells: list[CellPlan]) -> list[CellPlan]:
    """Record the cells the response cache answers whole, each in its one transaction as if
    generated; returns the others, for the model. A block does this before it takes the `gpu`
    slot, and the cached cells are not one Prefect task each: a rerun of an unchanged grid
    needs neither the slot nor the ~28 ms of task bookkeeping per cell."""
    if not cells or not cache.holds(cells[0].model):  # a block is one model's cells
        return cells
    left = []
    for cell in cells:
        try:
            _collect(None, plan, cell)
        except NotCached:
            left.append(cell)
    return left


def _collect(provider: Provider | None, plan: RunContext, cell: CellPlan) -> CellOutcome:
    started_at = utcnow()
    load_s = 0.0
    budget = AttemptBudget(cell.attempt_budget, plan.config.max_backoff_s)
    candidates: list[Candidate] = []
    calls: list[LLMCall] = []
    error = None
    for index in range(cell.n_candidates):
        try:
            load_s += _run_chain(provider, cell, index, budget, candidates, calls)
        except ProviderError as exc:
            error = str(exc)
            break
    status = CellStatus.failed if error else CellStatus.completed

    with session() as s:
        row = s.get_one(Cell, cell.id)
        row.status, row.error, row.model_load_s = status, error, load_s
        row.started_at, row.finished_at = started_at, utcnow()
        row.worker = worker_identity()
        s.add_all(candidates)
        s.add_all(calls)
        tracking_outbox.enqueue(s, cell.run_id, "cell", {}, cell_id=cell.id)
    events.emit("cell_done", cell=cell, status=status, error=error)
    return CellOutcome(cell_id=cell.id, status=status, n_candidates=len(candidates), error=error)
