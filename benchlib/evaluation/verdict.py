"""Did this change make things worse? A run compared with a baseline, cell by cell.

Cells pair by (model, prompt version, scenario). Cells whose identity hashes differ are not
comparable and are listed, never silently compared, except the prompt text when the caller says
the prompt is the change under test (an optimisation loop editing a prompt version). A cell of
the run left without a comparable baseline cell is a part of the change that was not measured:
the verdict is not acceptable unless the caller accepts that explicitly.

The interval of the mean quality delta resamples scenarios, not pairs: the pairs of one
scenario (one per model and prompt) share its difficulty, so treating them as independent gives
an interval too narrow (docs/statistics.md has the measured coverage that chose the method).
"""

import math
from collections import defaultdict
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from sqlmodel import select

from benchlib.errors import BenchlibError
from benchlib.evaluation.ranking import is_ranked
from benchlib.evaluation.scoring import AUTO_COMPOSITE, COMPOSITE
from benchlib.evaluation.stats import CONFIDENCE, Interval, Method, intervals, scenario_means
from benchlib.spec.hashing import content_hash
from benchlib.store.db import session
from benchlib.store.records import Candidate, Cell, CellStatus, Run, Score
from benchlib.store.runs import get_run, previous_completed_run, run_candidates, run_cells

CHECKS = ("format_ok", "schema_validity", "completeness", "policy_compliance")
QUALITY = (COMPOSITE, AUTO_COMPOSITE, "objective")
OBJECTIVE = ("schema_validity", "completeness", "policy_compliance", "reference_consistency")
# Chosen by benchmarks/verdict_coverage.py (results/verdict_coverage.json): the method whose
# coverage of a known truth is closest to 95%, and the number of scenarios below which it falls
# under 93%. Below that number the studentized bootstrap degenerates (with two scenarios every
# resample's t is 0 or undefined: an interval of width zero), so Student's t stands in, marked
# unreliable like any interval there.
METHOD: Method = "bootstrap-t"
SMALL_SAMPLE_METHOD: Method = "t"
MIN_SCENARIOS = 8
PROMPT_FLAG = "--allow-prompt-change"
UNCOMPARED_FLAG = "--allow-uncompared"
Rule = Literal["no_regression", "improvement"]


class PairResult(BaseModel):
    name: str = Field(description="model | prompt version | scenario")
    model: str
    prompt: str
    scenario: str
    metric: str | None = Field(description="What quality_delta measures.")
    quality_delta: float | None
    output_changed: bool
    broken: bool
    broken_checks: list[str]
    latency_delta: float | None = Field(
        description="Seconds per output, run − baseline; null when either side has an output "
        "from the response cache (its latency is the first run's, not this run's)."
    )
    score: float | None = Field(
        description="Relative quality gain when not broken, 0.0 when broken, null when unknown."
    )


class NotComparable(BaseModel):
    name: str
    reasons: list[str]
    in_run: bool = Field(
        description="A cell of the run (not only of the baseline): the change was not measured "
        "there, which makes the verdict not acceptable unless allowed."
    )
    flag: str | None = Field(
        description="The flag that would let the verdict stand with this cell: "
        f"{PROMPT_FLAG} (pairs it) or {UNCOMPARED_FLAG} (accepts it uncompared)."
    )


class DeltaInterval(BaseModel):
    """The mean quality delta over scenarios (each scenario's mean delta weighs one) with its
    interval, resampling scenarios."""

    scenarios: int
    method: str = Field(description=f"{METHOD}; {SMALL_SAMPLE_METHOD} below min_scenarios.")
    mean_quality_delta: float | None
    ci_low: float | None = Field(description="Null with fewer than two scenarios.")
    ci_high: float | None
    reliable: bool = Field(
        description="At least min_scenarios scenarios: below, the interval's coverage was "
        "measured under 93% (docs/statistics.md)."
    )


class GroupInterval(DeltaInterval):
    model: str
    prompt: str


class Summary(BaseModel):
    pairs: int
    improved: int
    regressed: int
    broken: int
    unchanged: int
    unknown: int
    not_comparable: int
    uncompared: int = Field(description="Cells of the run without a comparable baseline cell.")
    scenarios: int
    mean_quality_delta: float | None
    ci_low: float | None
    ci_high: float | None
    interval_method: str = Field(
        description=f"Over per-scenario mean deltas: {METHOD}; {SMALL_SAMPLE_METHOD} below "
        "min_scenarios."
    )
    confidence: float
    min_scenarios: int = Field(description="Fewer scenarios than this: the interval is unreliable.")
    interval_reliable: bool
    outputs: int = Field(description="Outputs of the run's compared cells.")
    cached_outputs: int = Field(
        description="Of those, answered from the response cache: no latency of this run."
    )
    baseline_cached_outputs: int
    worst: list[str]


class EvalReport(BaseModel):
    """The machine-readable verdict (its JSON Schema: benchlib/schemas/eval-report.schema.json)."""

    aggregate_score: float | None = Field(description="Minimum pair score; null if any unknown.")
    is_acceptable: bool
    rule: Rule = Field(
        description="no_regression: no broken check and the interval's high end not below "
        "−tolerance; improvement: every pair improved and none broken (aggregate_score > 0)."
    )
    reasons: list[str] = Field(description="Why the verdict is not acceptable; empty if it is.")
    baseline: str
    run: str
    tolerance: float
    prompt_change_allowed: bool
    uncompared_allowed: bool = Field(
        description=f"{UNCOMPARED_FLAG}: cells of the run without a comparable baseline cell "
        "were accepted uncompared."
    )
    summary: Summary
    groups: list[GroupInterval] = Field(description="The interval per (model, prompt version).")
    pairs: list[PairResult]
    not_comparable: list[NotComparable]


class CellFacts(BaseModel):
    cell: Cell
    quality: dict[str, float]
    checks: dict[str, float]
    outputs_hash: str
    outputs: int
    cached: int
    latency: float | None = Field(description="Live outputs only; null if any was cached.")


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
        cached = sum(c.cached for c in produced)
        facts[(cell.model, cell.prompt_version, cell.scenario_id)] = CellFacts(
            cell=cell,
            quality={k: quality[k] for k in QUALITY if k in quality},
            checks={k: means[k] for k in CHECKS if k in means},
            outputs_hash=content_hash(
                sorted((c.index, c.step, c.output_hash) for c in outputs[cell.id])
            ),
            outputs=len(produced),
            cached=cached,
            latency=(
                float(np.mean([c.latency_s for c in produced])) if produced and not cached else None
            ),
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


def _pair(key: tuple[str, str, str], base: CellFacts, now: CellFacts) -> PairResult:
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
    elif delta is None or metric is None:
        score = None
    else:
        reference = abs(base.quality[metric])
        score = delta / reference if reference > 1e-12 else delta
    latency = (
        now.latency - base.latency if now.latency is not None and base.latency is not None else None
    )
    return PairResult(
        name=" | ".join(key),
        model=key[0],
        prompt=key[1],
        scenario=key[2],
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


class Options(BaseModel):
    """What the caller accepts: the comparison's terms, recorded in the report."""

    tolerance: float = Field(0.0, ge=0.0)
    prompt_change: bool = False
    allow_uncompared: bool = False
    rule: Rule = "no_regression"


def evaluate(
    run_id: str,
    baseline: str,
    tolerance: float = 0.0,
    prompt_change: bool = False,
    allow_uncompared: bool = False,
    rule: Rule = "no_regression",
) -> EvalReport:
    options = Options(
        tolerance=tolerance,
        prompt_change=prompt_change,
        allow_uncompared=allow_uncompared,
        rule=rule,
    )
    run = get_run(run_id)
    base = resolve_baseline(run, baseline)
    if base.id == run.id:
        raise BenchlibError(f"run {run.id} cannot be its own baseline")
    before, after = _facts(base.id), _facts(run.id)
    pairs, not_comparable, compared = [], [], []
    for key in sorted(before.keys() | after.keys()):
        name = " | ".join(key)
        if key not in after or key not in before:
            where = "baseline" if key in before else "run"
            not_comparable.append(
                NotComparable(
                    name=name,
                    reasons=[f"only in the {where}"],
                    in_run=key in after,
                    flag=UNCOMPARED_FLAG if key in after else None,
                )
            )
            continue
        reasons = _differences(before[key].cell, after[key].cell, options.prompt_change)
        if reasons:
            prompt_only = reasons == ["prompt text or schema changed"]
            flag = PROMPT_FLAG if prompt_only else UNCOMPARED_FLAG
            not_comparable.append(NotComparable(name=name, reasons=reasons, in_run=True, flag=flag))
        else:
            pairs.append(_pair(key, before[key], after[key]))
            compared.append(key)
    if not pairs:
        example = f"; e.g. {not_comparable[0].name}: {not_comparable[0].reasons}"
        flags = sorted({nc.flag for nc in not_comparable if nc.flag})
        hint = f"; if that difference is the change under test: {' or '.join(flags)}"
        raise BenchlibError(
            f"no usable baseline: run {run.id} and baseline {base.id} share no comparable cell "
            f"({len(not_comparable)} not comparable{example if not_comparable else ''})"
            f"{hint if flags else ''}"
        )
    cached = (
        sum(after[k].outputs for k in compared),
        sum(after[k].cached for k in compared),
        sum(before[k].cached for k in compared),
    )
    seed = run.config.get("seed", 0)
    return _verdict(run.id, base.id, options, pairs, not_comparable, cached, seed)


def delta_interval(pairs: list[PairResult], seed: int) -> DeltaInterval:
    """The mean of per-scenario mean deltas, with its interval over scenarios."""
    known = [p for p in pairs if p.quality_delta is not None]
    scenarios = [p.scenario for p in known]
    per_scenario = scenario_means(np.array([p.quality_delta for p in known]), scenarios)
    n = len(per_scenario)
    method = METHOD if n >= MIN_SCENARIOS else SMALL_SAMPLE_METHOD
    if n == 0:
        interval = Interval(math.nan, math.nan, math.nan)
    else:
        mean, low, high = intervals(per_scenario, method, np.random.default_rng(seed))
        interval = Interval(float(mean[0]), float(low[0]), float(high[0]))
    return DeltaInterval(
        scenarios=n,
        method=method,
        mean_quality_delta=_finite(interval.mean),
        ci_low=_finite(interval.low),
        ci_high=_finite(interval.high),
        reliable=n >= MIN_SCENARIOS,
    )


def _verdict(
    run_id: str,
    baseline_id: str,
    options: Options,
    pairs: list[PairResult],
    not_comparable: list[NotComparable],
    cached: tuple[int, int, int],
    seed: int,
) -> EvalReport:
    overall = delta_interval(pairs, seed)
    by_group: dict[tuple[str, str], list[PairResult]] = defaultdict(list)
    for p in pairs:
        by_group[(p.model, p.prompt)].append(p)
    groups = [
        GroupInterval(model=model, prompt=prompt, **delta_interval(members, seed).model_dump())
        for (model, prompt), members in sorted(by_group.items())
    ]
    scores = [p.score for p in pairs if p.score is not None]
    aggregate = min(scores) if len(scores) == len(pairs) else None
    broken = sum(p.broken for p in pairs)
    uncompared = [nc for nc in not_comparable if nc.in_run]
    reasons = _reasons(options, overall, aggregate, broken, uncompared)
    deltas = [p.quality_delta for p in pairs if not p.broken and p.quality_delta is not None]
    worst = sorted(pairs, key=lambda p: (not p.broken, p.score if p.score is not None else 0.0))
    summary = Summary(
        pairs=len(pairs),
        improved=sum(d > 1e-9 for d in deltas),
        regressed=sum(d < -1e-9 for d in deltas),
        broken=broken,
        unchanged=sum(abs(d) <= 1e-9 for d in deltas),
        unknown=sum(p.quality_delta is None and not p.broken for p in pairs),
        not_comparable=len(not_comparable),
        uncompared=len(uncompared),
        scenarios=overall.scenarios,
        mean_quality_delta=overall.mean_quality_delta,
        ci_low=overall.ci_low,
        ci_high=overall.ci_high,
        interval_method=overall.method,
        confidence=CONFIDENCE,
        min_scenarios=MIN_SCENARIOS,
        interval_reliable=overall.reliable,
        outputs=cached[0],
        cached_outputs=cached[1],
        baseline_cached_outputs=cached[2],
        worst=[p.name for p in worst[:3]],
    )
    return EvalReport(
        aggregate_score=_finite(aggregate) if aggregate is not None else None,
        is_acceptable=not reasons,
        rule=options.rule,
        reasons=reasons,
        baseline=baseline_id,
        run=run_id,
        tolerance=options.tolerance,
        prompt_change_allowed=options.prompt_change,
        uncompared_allowed=options.allow_uncompared,
        summary=summary,
        groups=groups,
        pairs=pairs,
        not_comparable=not_comparable,
    )


def _reasons(
    options: Options,
    overall: DeltaInterval,
    aggregate: float | None,
    broken: int,
    uncompared: list[NotComparable],
) -> list[str]:
    """Why the verdict is not acceptable, each with what would change it; empty if it is."""
    reasons = []
    if uncompared and not options.allow_uncompared:
        why = sorted({r for nc in uncompared for r in nc.reasons})
        prompt_only = sum(nc.flag == PROMPT_FLAG for nc in uncompared)
        pairing = (
            f"{prompt_only} differ only in prompt text: {PROMPT_FLAG} pairs them if the prompt "
            "edit is the change under test; "
            if prompt_only
            else ""
        )
        reasons.append(
            f"{len(uncompared)} cell(s) of the run have no comparable baseline cell "
            f"({'; '.join(why)}): the change was not measured there. {pairing}"
            f"{UNCOMPARED_FLAG} accepts the verdict on the compared cells only"
        )
    if broken:
        reasons.append(f"{broken} pair(s) broke a check the baseline passed")
    if aggregate is None:
        reasons.append("a pair's quality is unknown (no composite or objective score)")
    elif options.rule == "improvement":
        if aggregate <= 0 and not broken:
            reasons.append("--require-improvement: not every pair improved (aggregate score ≤ 0)")
    else:
        # With one scenario there is no interval: the mean alone decides, marked unreliable.
        high = overall.ci_high if overall.ci_high is not None else overall.mean_quality_delta
        if high is not None and high < -options.tolerance:
            reasons.append(
                f"the mean quality delta's {CONFIDENCE:.0%} interval lies below −tolerance "
                f"({high:+.3f} < {-options.tolerance:+g})"
            )
    return reasons


def _finite(value: float) -> float | None:
    """NaN and infinities are written as null."""
    return None if value is None or not math.isfinite(value) else float(value)
