"""Did this change make things worse? A run compared with a baseline, cell by cell.

Cells pair by (model, prompt version, scenario). Cells whose identity hashes differ are not
comparable and are listed, never silently compared, except the prompt text when the caller says
the prompt is the change under test (an optimisation loop editing a prompt version).
"""

import math
from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlmodel import select

from benchlib.db import session
from benchlib.errors import BenchlibError
from benchlib.hashing import content_hash
from benchlib.ranking import is_ranked
from benchlib.records import Candidate, Cell, CellStatus, Run, Score
from benchlib.runs import get_run, previous_completed_run, run_candidates, run_cells
from benchlib.scoring import AUTO_COMPOSITE, COMPOSITE
from benchlib.stats import bootstrap_mean

CHECKS = ("format_ok", "schema_validity", "completeness", "policy_compliance")
QUALITY = (COMPOSITE, AUTO_COMPOSITE, "objective")
OBJECTIVE = ("schema_validity", "completeness", "policy_compliance", "reference_consistency")


class PairResult(BaseModel):
    name: str = Field(description="model | prompt version | scenario")
    metric: str | None = Field(description="What quality_delta measures.")
    quality_delta: float | None
    output_changed: bool
    broken: bool
    broken_checks: list[str]
    latency_delta: float | None = Field(description="Seconds per output, run − baseline.")
    score: float | None = Field(
        description="Relative quality gain when not broken, 0.0 when broken, null when unknown."
    )


class NotComparable(BaseModel):
    name: str
    reasons: list[str]


class Summary(BaseModel):
    pairs: int
    improved: int
    regressed: int
    broken: int
    unchanged: int
    unknown: int
    not_comparable: int
    mean_quality_delta: float | None
    ci_low: float | None
    ci_high: float | None
    worst: list[str]


class EvalReport(BaseModel):
    """The machine-readable verdict (its JSON Schema: benchlib/schemas/eval-report.schema.json)."""

    aggregate_score: float | None = Field(description="Minimum pair score; null if any unknown.")
    is_acceptable: bool
    baseline: str
    run: str
    tolerance: float
    prompt_change_allowed: bool
    summary: Summary
    pairs: list[PairResult]
    not_comparable: list[NotComparable]


class CellFacts(BaseModel):
    cell: Cell
    quality: dict[str, float]
    checks: dict[str, float]
    outputs_hash: str
    latency: float | None


def _facts(run_id: str) -> dict[tuple[str, str, str], CellFacts]:
    """Per cell: quality from the outputs the run is ranked on (as its leaderboard), checks
    from every step (a step that breaks breaks the cell)."""
    rank_on = get_run(run_id).rank_on
    with session() as s:
        scores = list(s.exec(select(Score).where(Score.run_id == run_id)))
    outputs: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in run_candidates(run_id):
        outputs[candidate.cell_id].append(candidate)
    cells = run_cells(run_id)
    ranked = {
        c.id for cell in cells for c in outputs[cell.id] if is_ranked(rank_on, cell.steps, c.step)
    }
    by_cell: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    answer: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for score in scores:
        by_cell[score.cell_id][score.name].append(score.value)
        if score.candidate_id in ranked:
            answer[score.cell_id][score.name].append(score.value)
    facts = {}
    for cell in cells:
        means = {name: float(np.mean(v)) for name, v in by_cell[cell.id].items()}
        quality = {name: float(np.mean(v)) for name, v in answer[cell.id].items()}
        objective = [quality[n] for n in OBJECTIVE if n in quality]
        if objective:
            quality["objective"] = float(np.mean(objective))
        produced = [c for c in outputs[cell.id] if c.error is None]
        facts[(cell.model, cell.prompt_version, cell.scenario_id)] = CellFacts(
            cell=cell,
            quality={k: quality[k] for k in QUALITY if k in quality},
            checks={k: means[k] for k in CHECKS if k in means},
            outputs_hash=content_hash(
                sorted((c.index, c.step, c.output_hash) for c in outputs[cell.id])
            ),
            latency=float(np.mean([c.latency_s for c in produced])) if produced else None,
        )
    return facts


def _differences(base: Cell, now: Cell, prompt_change: bool) -> list[str]:
    reasons = []
    if base.prompt_hash != now.prompt_hash and not prompt_change:
        reasons.append("prompt text or schema changed")
    if base.scenario_hash != now.scenario_hash:
        reasons.append("scenario data changed")
    if base.rubric_hash != now.rubric_hash:
        reasons.append("rubric changed")
    if base.model_digest != now.model_digest:
        reasons.append("model weights changed")
    if base.params != now.params:
        reasons.append(f"generation params changed ({base.params} → {now.params})")
    return reasons


def _pair(name: str, base: CellFacts, now: CellFacts) -> PairResult:
    metric = next((m for m in QUALITY if m in base.quality and m in now.quality), None)
    delta = now.quality[metric] - base.quality[metric] if metric else None
    broken_checks = [
        check
        for check, value in base.checks.items()
        if value >= 1.0 and check in now.checks and now.checks[check] < 1.0
    ]
    if base.cell.status == CellStatus.completed and now.cell.status == CellStatus.failed:
        broken_checks.append("cell failed")
    broken = bool(broken_checks)
    if broken:
        score = 0.0
    elif delta is None:
        score = None
    else:
        reference = abs(base.quality[metric])
        score = delta / reference if reference > 1e-12 else delta
    latency = (
        now.latency - base.latency if now.latency is not None and base.latency is not None else None
    )
    return PairResult(
        name=name,
        metric=metric,
        quality_delta=delta,
        output_changed=base.outputs_hash != now.outputs_hash,
        broken=broken,
        broken_checks=broken_checks,
        latency_delta=latency,
        score=score,
    )


def resolve_baseline(run: Run, baseline: str) -> Run:
    """A run id (or prefix), or `latest`: the previous completed run of the same experiment."""
    if baseline != "latest":
        return get_run(baseline)
    previous = previous_completed_run(run.experiment, before=run)
    if previous is None:
        raise BenchlibError(
            f"no usable baseline: no completed run of experiment {run.experiment!r} before {run.id}"
        )
    return previous


def evaluate(
    run_id: str, baseline: str, tolerance: float = 0.0, prompt_change: bool = False
) -> EvalReport:
    run = get_run(run_id)
    base = resolve_baseline(run, baseline)
    if base.id == run.id:
        raise BenchlibError(f"run {run.id} cannot be its own baseline")
    before, after = _facts(base.id), _facts(run.id)
    pairs, not_comparable = [], []
    for key in sorted(before.keys() | after.keys()):
        name = " | ".join(key)
        if key not in after or key not in before:
            where = "baseline" if key in before else "run"
            not_comparable.append(NotComparable(name=name, reasons=[f"only in the {where}"]))
            continue
        reasons = _differences(before[key].cell, after[key].cell, prompt_change)
        if reasons:
            not_comparable.append(NotComparable(name=name, reasons=reasons))
        else:
            pairs.append(_pair(name, before[key], after[key]))
    if not pairs:
        example = f"; e.g. {not_comparable[0].name}: {not_comparable[0].reasons}"
        raise BenchlibError(
            f"no usable baseline: run {run.id} and baseline {base.id} share no comparable cell "
            f"({len(not_comparable)} not comparable{example if not_comparable else ''})"
        )
    return _verdict(run.id, base.id, tolerance, prompt_change, pairs, not_comparable, run.config)


def _verdict(
    run_id: str,
    baseline_id: str,
    tolerance: float,
    prompt_change: bool,
    pairs: list[PairResult],
    not_comparable: list[NotComparable],
    config: dict[str, Any],
) -> EvalReport:
    deltas = np.array([p.quality_delta for p in pairs if p.quality_delta is not None])
    interval = bootstrap_mean(deltas, seed=config.get("seed", 0)) if deltas.size else None
    scores = [p.score for p in pairs]
    aggregate = None if any(s is None for s in scores) else min(scores)
    broken = sum(p.broken for p in pairs)
    acceptable = (
        aggregate is not None
        and not broken
        and interval is not None
        and not interval.high < -tolerance
    )
    known = [p for p in pairs if not p.broken and p.quality_delta is not None]
    worst = sorted(pairs, key=lambda p: (not p.broken, p.score if p.score is not None else 0.0))
    summary = Summary(
        pairs=len(pairs),
        improved=sum(p.quality_delta > 1e-9 for p in known),
        regressed=sum(p.quality_delta < -1e-9 for p in known),
        broken=broken,
        unchanged=sum(abs(p.quality_delta) <= 1e-9 for p in known),
        unknown=sum(p.quality_delta is None and not p.broken for p in pairs),
        not_comparable=len(not_comparable),
        mean_quality_delta=_finite(interval.mean) if interval else None,
        ci_low=_finite(interval.low) if interval else None,
        ci_high=_finite(interval.high) if interval else None,
        worst=[p.name for p in worst[:3]],
    )
    return EvalReport(
        aggregate_score=_finite(aggregate) if aggregate is not None else None,
        is_acceptable=acceptable,
        baseline=baseline_id,
        run=run_id,
        tolerance=tolerance,
        prompt_change_allowed=prompt_change,
        summary=summary,
        pairs=pairs,
        not_comparable=not_comparable,
    )


def _finite(value: float) -> float | None:
    """NaN and infinities are written as null."""
    return None if value is None or not math.isfinite(value) else float(value)
