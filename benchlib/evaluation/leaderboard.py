"""The leaderboard: one row per (model, prompt version), best first, saying how sure it is.

A row is ranked on the outputs of the steps its suite's `rank_on` names
(benchlib.evaluation.ranking: the final answer of each chain by default); the other steps are
scored as their own columns. The ranking metric is the rubric composite once anything is judged,
else its automatic part (the rubric's weights on the flags scorers compute). A row's mean is over
scenarios (the mean of its outputs per scenario); its 95% bootstrap interval resamples scenarios
and needs at least `MIN_SCENARIOS` of them carrying the metric, else it is n/a with the reason.
Coverage says how many of a row's ranked outputs carry the metric: a row resting on part of its
outputs that sits above a fully covered row is marked. A row whose paired difference to the leader
(over the scenarios both ran) is not clearly above zero is marked tied with the leader.

The published JSON Schema of `Leaderboard` is benchlib/schemas/leaderboard.schema.json.
"""

from collections import defaultdict
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from benchlib.evaluation.autojudge import JudgeAgreement, is_model_judge
from benchlib.evaluation.ranking import FINAL, describe, ranked_steps
from benchlib.evaluation.scoring import AUTO_COMPOSITE, COMPOSITE
from benchlib.evaluation.stats import CONFIDENCE, N_RESAMPLES, bootstrap_mean, krippendorff_alpha
from benchlib.spec.rubric import Rubric
from benchlib.store.records import Candidate, Cell, CellStatus, Judgement, Score, stored_id

JudgedBy = Literal["nobody", "people", "model judges", "people and model judges"]
# A bootstrap over one scenario resamples one value: a zero-width interval that looks certain.
MIN_SCENARIOS = 2
# Scores that compare a cell's attempts with each other: meaningless for a single attempt.
COMPARES_ATTEMPTS = ("stability",)


class StepColumn(BaseModel):
    """One step of a row's chains, scored on its own (shown beside the ranked metric)."""

    step: str
    ranked: bool = Field(description="Its outputs are what the row is ranked on.")
    metric: str = Field(
        description="What `mean` averages: the board's metric, or the automatic "
        "composite for a step no judge saw."
    )
    mean: float | None
    outputs: int = Field(description="Attempts at this step, over the row's cells.")
    not_run: int = Field(description="Of those, how many never ran (an earlier step failed).")
    reasons: list[str] = Field(description="Why they did not run (distinct reasons, first 3).")
    scores: dict[str, float | None] = Field(description="Every score's mean over this step.")


class Row(BaseModel):
    """One (model, prompt version)."""

    rank: int
    tied_with_leader: bool = Field(
        description="The leader's paired advantage over this row (by scenario) is not clearly "
        f"above zero, or they share fewer than {MIN_SCENARIOS} scenarios."
    )
    partial_above_full: bool = Field(
        description="Ranked above a fully covered row while resting on part of its outputs."
    )
    model: str
    prompt: str
    ranked_steps: list[str] = Field(description="The steps whose outputs the row is ranked on.")
    n_scenarios: int
    n_cells: int
    n_outputs: int = Field(description="Outputs of the ranked step(s), every attempt.")
    n_scored: int = Field(description="Of those, how many carry the ranking metric.")
    n_judged: int = Field(description="Of those, how many at least one judge scored.")
    coverage: float = Field(description="n_scored / n_outputs (0 without outputs).")
    judge_coverage: float = Field(description="n_judged / n_outputs (0 without outputs).")
    metric: str
    mean: float | None = Field(description="Mean over scenarios of the metric.")
    ci_low: float | None
    ci_high: float | None
    scenarios_with_metric: int
    interval_note: str = Field(description="Why there is no interval, when there is none.")
    composite: float | None
    auto_composite: float | None
    criteria: dict[str, float | None]
    scores: dict[str, float | None] = Field(description="Objective scores of the ranked outputs.")
    not_applicable: dict[str, str] = Field(description="Score -> why it is n/a for this row.")
    steps: list[StepColumn] = Field(description="Every step of the row's chains, in order.")
    failed_cells: int
    failure_rate: float
    latency_p50_s: float | None = Field(description="Of live calls only (null: all cached).")
    latency_p95_s: float | None
    tokens_per_s: float | None
    cached_outputs: int = Field(
        0, description="Outputs answered from the response cache (no latency of their own)."
    )


class Leaderboard(BaseModel):
    """A run's leaderboard, as stored on the run, logged to MLflow and served by the API."""

    metric: str = Field(description="The ranking metric: composite or auto_composite.")
    formula: str = Field(description="The metric's weighted sum, from the rubric.")
    combination: str = Field(description="How human and automatic parts make the metric.")
    rank_on: str = Field(description="The suite's rank_on: final, all or a step name.")
    ranked_on: str = Field(description="rank_on in words.")
    confidence: float
    resamples: int
    seed: int
    min_scenarios: int = Field(description="Scenarios carrying the metric an interval needs.")
    rows: list[Row]
    agreement: dict[str, float | None] = Field(description="Krippendorff's alpha per criterion.")
    judges: Literal["human", "model", "all"] = Field(
        "human",
        description="The run's `judges` setting: whose judgements the composite may use.",
    )
    judged_by: JudgedBy = Field(
        "nobody",
        description="Whose judgements the composite used: people, model judges, people and "
        "model judges, or nobody.",
    )
    model_agreement: list[JudgeAgreement] = Field(
        default_factory=list,
        description="Per model judge: agreement with people on the items both judged "
        "(benchlib.evaluation.autojudge.calibration).",
    )


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else value


def agreement(rubric: Rubric, judgements: list[Judgement]) -> dict[str, float | None]:
    """Krippendorff's alpha per criterion, over outputs judged by several people."""
    judges = sorted({j.judge for j in judgements})
    items = sorted({j.candidate_id for j in judgements})
    result = {}
    for criterion in rubric.criteria:
        matrix = np.full((len(judges), len(items)), np.nan)
        for j in judgements:
            if criterion.name in j.scores:
                matrix[judges.index(j.judge), items.index(j.candidate_id)] = j.scores[
                    criterion.name
                ]
        result[criterion.name] = krippendorff_alpha(matrix)
    return result


def combination(rubric: Rubric, metric: str) -> str:
    """How the human and the automatic parts of the rubric make the ranking metric."""
    auto = rubric.formula(automatic=True) or "no automatic flags"
    if metric == AUTO_COMPOSITE:
        return (
            f"auto_composite = {auto}: the automatic part of the composite "
            f"({rubric.formula()}); nothing is judged yet, so human criteria do not count."
        )
    return (
        f"composite = {rubric.formula()}, per output: criteria are the mean over its judges, "
        "flags are computed. Only a judged output has a composite, so a row's composite is the "
        "mean over its judged outputs alone (coverage: how many of its outputs that is); its "
        f"unjudged outputs count only in auto_composite ({auto}), never in the ranking."
    )


def _step_column(
    step: str,
    ranked: bool,
    metric: str,
    cands: list[Candidate],
    values: dict[int, dict[str, float]],
) -> StepColumn:
    own = [values.get(stored_id(c), {}) for c in cands]
    names = sorted({n for v in own for n in v})
    carried = [v[metric] for v in own if metric in v]
    used = metric if carried else AUTO_COMPOSITE
    failed = [c.error for c in cands if c.error is not None]
    return StepColumn(
        step=step,
        ranked=ranked,
        metric=used,
        mean=_mean([v[used] for v in own if used in v]),
        outputs=len(cands),
        not_run=len(failed),
        reasons=list(dict.fromkeys(failed))[:3],
        scores={n: _mean([v[n] for v in own if n in v]) for n in names},
    )


def _interval(
    metric: str, per_scenario: dict[str, float], seed: int
) -> tuple[float | None, float | None, float | None, str]:
    """(mean, low, high, why there is no interval)."""
    values = np.array(list(per_scenario.values()))
    if values.size == 0:
        return None, None, None, f"no output carries {metric}"
    if values.size < MIN_SCENARIOS:
        why = f"{values.size} scenario carries {metric}: an interval needs at least {MIN_SCENARIOS}"
        return float(values.mean()), None, None, why
    interval = bootstrap_mean(values, seed)
    return _finite(interval.mean), _finite(interval.low), _finite(interval.high), ""


def build_leaderboard(
    rubric: Rubric,
    cells: list[Cell],
    candidates: list[Candidate],
    scores: list[Score],
    judgements: list[Judgement],
    seed: int,
    rank_on: str = FINAL,
    judges: Literal["human", "model", "all"] = "human",
    model_agreement: list[JudgeAgreement] | None = None,
) -> Leaderboard:
    """`judgements` are those the composite used (scoring.composite_judgements under the
    `judges` setting); the board says whose they were."""
    values: dict[int, dict[str, float]] = defaultdict(dict)
    for score in scores:
        values[score.candidate_id][score.name] = score.value
    metric = COMPOSITE if any(s.name == COMPOSITE for s in scores) else AUTO_COMPOSITE
    criteria = [c.name for c in rubric.criteria]
    judged_items = {j.candidate_id for j in judgements}

    cell_of = {cell.id: cell for cell in cells}
    groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.model, cell.prompt_version)].append(cell)
    cands_of: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    attempts: dict[tuple[str, str], int] = defaultdict(int)
    for candidate in candidates:
        cell = cell_of[candidate.cell_id]
        cands_of[(cell.model, cell.prompt_version)].append(candidate)
        attempts[(candidate.cell_id, candidate.step)] += 1

    rows, per_scenario = [], {}
    for key, group_cells in groups.items():
        chain = max((cell.steps for cell in group_cells), key=len)
        ranked = ranked_steps(rank_on, chain)
        cands = cands_of[key]
        answers = [c for c in cands if c.step in ranked]
        # A score that compares attempts says nothing about a step attempted once.
        alone = {c.id for c in answers if attempts[(c.cell_id, c.step)] < 2}
        answer_values = [
            {
                n: v
                for n, v in values.get(stored_id(c), {}).items()
                if not (c.id in alone and n in COMPARES_ATTEMPTS)
            }
            for c in answers
        ]
        by_scenario: dict[str, list[float]] = defaultdict(list)
        for candidate, value in zip(answers, answer_values, strict=True):
            if metric in value:
                by_scenario[cell_of[candidate.cell_id].scenario_id].append(value[metric])
        per_scenario[key] = {s: float(np.mean(v)) for s, v in by_scenario.items()}
        mean, low, high, why = _interval(metric, per_scenario[key], seed)
        produced = [c for c in cands if c.error is None]
        live = [c for c in produced if not c.cached]  # a cached output's latency is not ours
        latencies = [c.latency_s for c in live]
        failed = sum(cell.status == CellStatus.failed for cell in group_cells)
        scored = sum(metric in v for v in answer_values)
        judged = sum(c.id in judged_items for c in answers)
        named = {n for v in values.values() for n in v} - {COMPOSITE, AUTO_COMPOSITE, *criteria}
        other = {n: _mean([v[n] for v in answer_values if n in v]) for n in sorted(named)}
        not_applicable = {
            n: "every cell has one attempt: it compares a cell's attempts"
            for n in COMPARES_ATTEMPTS
            if n in named and other.get(n) is None and answers
        }
        rows.append(
            Row(
                rank=0,
                tied_with_leader=False,
                partial_above_full=False,
                model=key[0],
                prompt=key[1],
                ranked_steps=ranked,
                n_scenarios=len({cell.scenario_id for cell in group_cells}),
                n_cells=len(group_cells),
                n_outputs=len(answers),
                n_scored=scored,
                n_judged=judged,
                coverage=scored / len(answers) if answers else 0.0,
                judge_coverage=judged / len(answers) if answers else 0.0,
                metric=metric,
                mean=mean,
                ci_low=low,
                ci_high=high,
                scenarios_with_metric=len(per_scenario[key]),
                interval_note=why,
                composite=_mean([v[COMPOSITE] for v in answer_values if COMPOSITE in v]),
                auto_composite=_mean(
                    [v[AUTO_COMPOSITE] for v in answer_values if AUTO_COMPOSITE in v]
                ),
                criteria={n: _mean([v[n] for v in answer_values if n in v]) for n in criteria},
                scores={n: v for n, v in other.items() if n not in not_applicable},
                not_applicable=not_applicable,
                steps=[
                    _step_column(
                        step, step in ranked, metric, [c for c in cands if c.step == step], values
                    )
                    for step in chain
                ],
                failed_cells=failed,
                failure_rate=failed / len(group_cells),
                latency_p50_s=_percentile(latencies, 50),
                latency_p95_s=_percentile(latencies, 95),
                tokens_per_s=(
                    sum(c.completion_tokens for c in live) / sum(latencies)
                    if sum(latencies)
                    else None
                ),
                cached_outputs=len(produced) - len(live),
            )
        )
    rows.sort(key=lambda r: (r.mean is None, -(r.mean or 0.0), r.failure_rate))
    _mark_ties(rows, per_scenario, seed)
    _mark_partial(rows)
    return Leaderboard(
        metric=metric,
        formula=rubric.formula(automatic=metric == AUTO_COMPOSITE),
        combination=combination(rubric, metric),
        rank_on=rank_on,
        ranked_on=describe(rank_on),
        confidence=CONFIDENCE,
        resamples=N_RESAMPLES,
        seed=seed,
        min_scenarios=MIN_SCENARIOS,
        rows=rows,
        agreement=agreement(rubric, judgements),
        judges=judges,
        judged_by=judged_by(judgements),
        model_agreement=model_agreement or [],
    )


def judged_by(judgements: list[Judgement]) -> JudgedBy:
    """Whose the judgements are, said on the board so people and models never mix unseen."""
    people = any(not is_model_judge(j.judge) for j in judgements)
    models = any(is_model_judge(j.judge) for j in judgements)
    if people and models:
        return "people and model judges"
    return "people" if people else "model judges" if models else "nobody"


def agreement_lines(board: Leaderboard) -> list[str]:
    """Whose judgements the composite used, then each model judge's agreement with people on
    the items both judged: alpha and bias per criterion, thin evidence marked."""
    lines = [f"Judged by {board.judged_by} (judges: {board.judges})."]
    for entry in board.model_agreement:
        if not entry.items:
            lines.append(f"{entry.model_judge}: no item judged by people too, no agreement.")
            continue
        figures = "; ".join(
            f"{c.criterion} alpha {_fmt(c.alpha)}, bias {_signed(c.bias)} "
            f"[{_signed(c.bias_low)}, {_signed(c.bias_high)}]"
            for c in entry.criteria
        )
        thin = " (thin evidence)" if any(c.thin for c in entry.criteria) else ""
        lines.append(f"{entry.model_judge} vs people on {entry.items} item(s){thin}: {figures}")
    return lines


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _mark_ties(
    rows: list[Row], per_scenario: dict[tuple[str, str], dict[str, float]], seed: int
) -> None:
    """Rank rows; a row is tied with the leader when the paired interval of (leader − row)
    over shared scenarios reaches down to zero, or too few scenarios are shared to tell."""
    leader = per_scenario[(rows[0].model, rows[0].prompt)] if rows else {}
    for rank, row in enumerate(rows, start=1):
        row.rank = rank
        mine = per_scenario[(row.model, row.prompt)]
        shared = sorted(leader.keys() & mine.keys())
        if rank == 1 or not shared:
            continue
        if len(shared) < MIN_SCENARIOS:
            row.tied_with_leader = True
            continue
        diffs = np.array([leader[s] - mine[s] for s in shared])
        row.tied_with_leader = bool(bootstrap_mean(diffs, seed).low <= 0.0)


def _mark_partial(rows: list[Row]) -> None:
    """Mark a row that rests on part of its outputs and sits above a fully covered row."""
    for i, row in enumerate(rows):
        below = rows[i + 1 :]
        row.partial_above_full = row.coverage < 1.0 and any(
            other.coverage >= 1.0 and other.mean is not None for other in below
        )


def flat_row(row: Row) -> dict[str, object]:
    """A row with nested values as top-level columns (tables, CSV, Prefect artifacts)."""
    data = row.model_dump(mode="json", exclude={"scores", "criteria", "steps", "not_applicable"})
    data.update(row.criteria)
    data.update({f"score_{name}": value for name, value in row.scores.items()})
    data.update({f"score_{name}": "n/a" for name in row.not_applicable})
    for step in row.steps:
        data[f"step_{step.step}"] = step.mean if step.outputs > step.not_run else "not run"
    data["ranked_steps"] = ", ".join(row.ranked_steps)
    return data


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def rank_label(row: Row) -> str:
    """The rank as people read it: ≈ tied with the leader, † partial coverage above a full one."""
    label = f"≈{row.rank}" if row.tied_with_leader else str(row.rank)
    return label + ("†" if row.partial_above_full else "")


def coverage_label(row: Row) -> str:
    return f"{row.coverage:.0%} ({row.n_scored}/{row.n_outputs})"


def interval_label(row: Row) -> str:
    if row.ci_low is None or row.ci_high is None:
        return "n/a"
    return f"{row.ci_low:.2f}…{row.ci_high:.2f}"


def step_label(step: StepColumn) -> str:
    if step.outputs and step.not_run == step.outputs:
        return "not run"
    value = _fmt(step.mean)
    return f"{value} ({step.not_run} not run)" if step.not_run else value


def _step_row(row: Row, steps: list[str]) -> list[str]:
    """The row's value under each step column; * on the ranked step, blank where it has none."""
    by_step = {step.step: step for step in row.steps}
    return [
        step_label(by_step[s]) + ("*" if by_step[s].ranked else "") if s in by_step else ""
        for s in steps
    ]


def _step_names(board: Leaderboard) -> list[str]:
    """Step columns, when any row is a chain (a single step is the row itself)."""
    if all(len(row.steps) < 2 for row in board.rows):
        return []
    return list(dict.fromkeys(step.step for row in board.rows for step in row.steps))


def table_cells(board: Leaderboard, wide: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and body of the table people read. Compact: rank, model, prompt, coverage, the
    metric with its interval, failures, latency. Wide adds steps, criteria, scores and costs."""
    rows = board.rows
    header = ["#", "model", "prompt", "coverage", board.metric, "95% CI", "failed", "p50 s"]
    criteria, scores, steps = [], [], []
    if wide:
        criteria = sorted({n for row in rows for n, v in row.criteria.items() if v is not None})
        scores = sorted({name for row in rows for name in (*row.scores, *row.not_applicable)})
        steps = _step_names(board)
        header[3:3] = ["scen.", "outputs", "judged"]
        header += [f"step {s}" for s in steps]
        header += [*criteria, *scores, "tok/s", "cached"]
    body = []
    for row in rows:
        line = [
            rank_label(row),
            row.model,
            row.prompt,
            coverage_label(row),
            _fmt(row.mean),
            interval_label(row),
            f"{row.failed_cells}/{row.n_cells}",
            _fmt(row.latency_p50_s),
        ]
        if wide:
            line[3:3] = [str(row.n_scenarios), str(row.n_outputs), f"{row.judge_coverage:.0%}"]
            line += _step_row(row, steps)
            line += [_fmt(row.criteria.get(n)) for n in criteria]
            line += ["n/a" if n in row.not_applicable else _fmt(row.scores.get(n)) for n in scores]
            line += [_fmt(row.tokens_per_s), str(row.cached_outputs)]
        body.append(line)
    return header, body


def step_cells(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """Each row's chain step by step (empty without chains): the step's mean, * on the step the
    row is ranked on, and how many of its outputs never ran (the reasons are in `notes`)."""
    steps = _step_names(board)
    if not steps:
        return [], []
    header = ["#", "model", "prompt", *steps]
    body = []
    for row in board.rows:
        body.append([rank_label(row), row.model, row.prompt, *_step_row(row, steps)])
    return header, body


def notes(board: Leaderboard) -> list[str]:
    """What a reader must know to read the table honestly: what rows are ranked on, how the
    metric is made, and every mark and n/a in it, with its reason."""
    lines = [
        f"Ranked on {board.ranked_on} by {board.metric}; {board.combination}",
        f"95% CI: bootstrap over scenarios ({board.resamples} resamples, seed {board.seed}); "
        f"n/a below {board.min_scenarios} scenarios carrying the metric. ≈ tied with the leader.",
    ]
    lines += agreement_lines(board)
    if _step_names(board):
        lines.append("Steps: each step's mean on its own; * marks the step a row is ranked on.")
    for row in board.rows:
        name = f"{row.model} · {row.prompt}"
        if row.partial_above_full:
            lines.append(
                f"† {name}: ranked above a fully covered row on {row.n_scored} of its "
                f"{row.n_outputs} outputs"
            )
        if row.interval_note:
            lines.append(f"{name}: interval n/a: {row.interval_note}")
        lines += [f"{name}: {score} n/a: {why}" for score, why in row.not_applicable.items()]
        for step in row.steps:
            if step.not_run:
                count = f"{step.not_run} of {step.outputs}"
                why = "; ".join(step.reasons)
                lines.append(f"{name}: step {step.step}: {count} not run ({why})")
    return lines


def markdown(run_id: str, board: Leaderboard) -> str:
    header, body = table_cells(board, wide=True)
    lines = [
        f"# Benchmark run `{run_id}`",
        "",
        *(f"- {note}" for note in notes(board)),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in body),
    ]
    return "\n".join(lines)
