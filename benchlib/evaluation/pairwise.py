"""Pairwise judging (`judge_mode: pairwise`): which of two blind outputs for one scenario is
better, and the Bradley–Terry strengths of the (model, prompt) rows that follow.

Which pairs. Per scenario, the rows that produced an output are put in a random order (seeded
by the run) and joined in a cycle: row 1 – row 2 – … – row K – row 1 (one pair when K = 2). Every
row is then in exactly two pairs per scenario (one when K = 2), so no row gets more judge time
than another; each scenario's pairs connect all its rows, so strengths are comparable even from
a few scenarios; and a fresh order per scenario spreads the opponents, so over S scenarios each
two rows meet about 2S/(K−1) times. It costs K pairs per scenario where all pairs would cost
K(K−1)/2. Within a pair the sides are shuffled too; nothing shown names a model or a prompt.

The fit. P(row i beats row j) = σ(θi − θj); a tie counts half a win each way; a weak Gaussian
prior on θ (precision PRIOR) keeps a row that never lost finite. Strengths are centred (mean 0,
log-odds units). Intervals: the standard error from a bootstrap resampling scenarios (a
scenario's pairs move together: its judgements are not independent) times Student's t with
scenarios − 1 degrees of freedom (see interval_half_width).
"""

import json
import random
from collections import defaultdict
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError
from scipy.stats import t as t_dist
from sqlmodel import select

from benchlib.errors import BenchlibError, describe_validation_error
from benchlib.evaluation import judging
from benchlib.evaluation.stats import CONFIDENCE, N_RESAMPLES, krippendorff_alpha
from benchlib.spec.hashing import content_hash
from benchlib.store.db import session
from benchlib.store.records import Candidate, PairJudgement, Run
from benchlib.store.runs import get_run, run_candidates, run_cells

FORMAT = "benchlib-pairs-v1"
Choice = Literal["a", "b", "tie"]
PRIOR = 0.01
MAX_STEP = 2.0
# Fewer judged scenarios than this: a bootstrap over so few clusters is too narrow to trust.
THIN_SCENARIOS = 5
INSTRUCTIONS = (
    "For every pair, read the scenario, then both outputs, and set `choice` to a (A is better), "
    "b (B is better) or tie; leave it null to skip the pair. A comment is optional. Set `judge` "
    "to your name or id. Then: benchlib judge apply FILE"
)


def is_pairwise(run: Run) -> bool:
    return run.config.get("judge_mode", "rubric") == "pairwise"


class Side(BaseModel):
    candidate_id: int
    model: str
    prompt: str
    output: str


class Pair(BaseModel):
    """A pair with what only benchlib may know (never exported)."""

    pair_id: str
    scenario_id: str
    context: dict[str, Any]
    a: Side
    b: Side


def pairs_of(run: Run) -> list[Pair]:
    """The run's pairs (see the module's docstring), in a seeded shuffled order."""
    cells = {cell.id: cell for cell in run_cells(run.id)}
    finals: dict[str, dict[tuple[str, str], list[Candidate]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for candidate in run_candidates(run.id):
        cell = cells[candidate.cell_id]
        if candidate.error is None and candidate.step_index == len(cell.steps) - 1:
            finals[cell.scenario_id][(cell.model, cell.prompt_version)].append(candidate)
    rng = random.Random(f"{run.id}:{run.config.get('seed', 0)}")
    pairs = []
    for scenario_id in sorted(finals):
        by_row = finals[scenario_id]
        rows = sorted(by_row)
        if len(rows) < 2:
            continue
        rng.shuffle(rows)
        edges = list(pairwise(rows))
        if len(rows) > 2:
            edges.append((rows[-1], rows[0]))
        for left, right in edges:
            sides = [(row, rng.choice(by_row[row])) for row in (left, right)]
            rng.shuffle(sides)
            (row_a, cand_a), (row_b, cand_b) = sides
            pairs.append(
                Pair(
                    pair_id="p" + content_hash([run.id, cand_a.id, cand_b.id])[:10],
                    scenario_id=scenario_id,
                    context=cells[cand_a.cell_id].scenario_vars,
                    a=Side(
                        candidate_id=cand_a.id, model=row_a[0], prompt=row_a[1], output=cand_a.text
                    ),
                    b=Side(
                        candidate_id=cand_b.id, model=row_b[0], prompt=row_b[1], output=cand_b.text
                    ),
                )
            )
    pairs.sort(key=lambda pair: pair.pair_id)
    rng.shuffle(pairs)
    return pairs


def pair_judgements_of(run_id: str) -> list[PairJudgement]:
    with session() as s:
        return list(s.exec(select(PairJudgement).where(PairJudgement.run_id == run_id)))


def pending_pairs(
    run: Run, judge: str | None = None, pairs: list[Pair] | None = None
) -> list[Pair]:
    """Pairs nobody has judged (or, given a judge, that this judge has not)."""
    done = {j.pair_id for j in pair_judgements_of(run.id) if judge is None or j.judge == judge}
    return [
        pair for pair in (pairs_of(run) if pairs is None else pairs) if pair.pair_id not in done
    ]


class PairItem(BaseModel):
    """A pair as a judge sees it: blind."""

    pair_id: str
    context: dict[str, Any] = Field(description="The scenario both outputs answer.")
    output_a: str
    output_b: str
    choice: Choice | None = Field(None, description="a, b or tie; null = not judged.")
    comment: str = ""


class PairsFile(BaseModel):
    format: Literal["benchlib-pairs-v1"]
    run_id: str
    instructions: str = INSTRUCTIONS
    judge: str = Field("", description="Who judged: fill in before applying.")
    items: list[PairItem]


def blind(pair: Pair, choice: Choice | None = None, comment: str = "") -> PairItem:
    return PairItem(
        pair_id=pair.pair_id,
        context=pair.context,
        output_a=pair.a.output,
        output_b=pair.b.output,
        choice=choice,
        comment=comment,
    )


def export_file(run: Run, judge: str = "", pairs: list[Pair] | None = None) -> PairsFile:
    if pairs is None:
        pairs = pending_pairs(run, judge) if judge else pairs_of(run)
    return PairsFile(
        format=FORMAT, run_id=run.id, judge=judge, items=[blind(pair) for pair in pairs]
    )


def judged_by(pairs: list[Pair], judgements: list[PairJudgement], judge: str) -> list[PairItem]:
    """The pairs `judge` has judged, with their choice and comment, in the order judged."""
    mine = sorted((j for j in judgements if j.judge == judge), key=lambda j: (j.created_at, j.id))
    by_id = {pair.pair_id: pair for pair in pairs}
    return [
        blind(by_id[j.pair_id], j.choice, j.comment)  # type: ignore[arg-type]
        for j in mine
        if j.pair_id in by_id
    ]


class Chosen(BaseModel):
    pair_id: str
    choice: Choice
    comment: str = ""


def apply_choices(run_id: str, judge: str, chosen: list[Chosen], source: str) -> dict[str, int]:
    """Validate everything (every problem at once, nothing applied if any), then write in one
    transaction; applying twice changes nothing."""
    run = get_run(run_id)
    if not is_pairwise(run):
        raise BenchlibError(f"{source}: run {run.id} is judged on its rubric, not in pairs")
    pairs = {pair.pair_id: pair for pair in pairs_of(run)}
    problems, seen = [], set()
    if not judge.strip():
        problems.append("judge: empty; say who judged (a name or an id)")
    for entry in chosen:
        if entry.pair_id in seen:
            problems.append(f"pair {entry.pair_id}: appears more than once")
        elif entry.pair_id not in pairs:
            problems.append(f"pair {entry.pair_id}: unknown pair for run {run.id}")
        seen.add(entry.pair_id)
    if problems:
        raise BenchlibError(
            f"{source}: {len(problems)} problem(s), nothing applied:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    counts: dict[str, int] = defaultdict(int)
    with session() as s:
        existing = {
            j.pair_id: j
            for j in s.exec(
                select(PairJudgement).where(
                    PairJudgement.run_id == run.id, PairJudgement.judge == judge
                )
            )
        }
        for entry in chosen:
            pair, previous = pairs[entry.pair_id], existing.get(entry.pair_id)
            if previous is None:
                s.add(
                    PairJudgement(
                        run_id=run.id,
                        pair_id=pair.pair_id,
                        candidate_a=pair.a.candidate_id,
                        candidate_b=pair.b.candidate_id,
                        judge=judge,
                        choice=entry.choice,
                        comment=entry.comment,
                    )
                )
                counts["added"] += 1
            elif (previous.choice, previous.comment) != (entry.choice, entry.comment):
                previous.choice, previous.comment = entry.choice, entry.comment
                s.add(previous)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
    return {key: counts[key] for key in ("added", "updated", "unchanged")}


def parse_file(text: str, source: str) -> PairsFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchlibError(f"{source}: malformed JSON: {exc}") from None
    try:
        return PairsFile.model_validate(data)
    except ValidationError as exc:
        raise BenchlibError(describe_validation_error(exc, source)) from None


def apply_file(text: str, source: str) -> tuple[str, dict[str, int]]:
    """Apply a filled pairs file; returns its run id and what changed."""
    pairs_file = parse_file(text, source)
    run = get_run(pairs_file.run_id)
    chosen = [
        Chosen(pair_id=item.pair_id, choice=item.choice, comment=item.comment)
        for item in pairs_file.items
        if item.choice is not None
    ]
    return run.id, apply_choices(run.id, pairs_file.judge, chosen, source)


# The fit.


def fit_strengths(
    winners: np.ndarray, losers: np.ndarray, outcome: np.ndarray, weights: np.ndarray, n: int
) -> np.ndarray:
    """Bradley–Terry strengths (centred, log-odds) by penalised maximum likelihood: comparison
    k says `winners[k]` beat `losers[k]` with outcome 1 (0.5 = tie), counted `weights[k]` times.
    Newton's method on a strictly convex objective, steps capped so a row that never lost
    cannot overshoot."""
    theta = np.zeros(n)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta[winners] - theta[losers])))
        residual = weights * (outcome - p)
        grad = PRIOR * theta
        np.add.at(grad, winners, -residual)
        np.add.at(grad, losers, residual)
        h = weights * p * (1 - p)
        hessian = PRIOR * np.eye(n)
        np.add.at(hessian, (winners, winners), h)
        np.add.at(hessian, (losers, losers), h)
        np.add.at(hessian, (winners, losers), -h)
        np.add.at(hessian, (losers, winners), -h)
        step = np.linalg.solve(hessian, grad)
        step *= min(1.0, MAX_STEP / (np.abs(step).max() or 1.0))
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return theta - theta.mean()


def bootstrap_strengths(
    winners: np.ndarray,
    losers: np.ndarray,
    outcome: np.ndarray,
    scenario: np.ndarray,
    n: int,
    n_scenarios: int,
    seed: int,
    n_resamples: int = N_RESAMPLES,
) -> np.ndarray:
    """Strengths refitted on `n_resamples` resamples of the scenarios (with replacement; a
    scenario's comparisons move together): one row of strengths per resample."""
    samples = np.zeros((n_resamples, n))
    rng = np.random.default_rng(seed)
    for r in range(n_resamples if n_scenarios else 0):
        picks = rng.integers(0, n_scenarios, n_scenarios)
        weights = np.bincount(picks, minlength=n_scenarios)[scenario].astype(float)
        samples[r] = fit_strengths(winners, losers, outcome, weights, n)
    return samples


def interval_half_width(samples: np.ndarray, n_scenarios: int) -> np.ndarray:
    """Half-width of the interval around each fitted strength: the bootstrap standard error
    times Student's t with (scenarios − 1) degrees of freedom. Chosen over the percentile
    interval by measured coverage (benchmarks/pairwise_coverage.py): with few scenarios the
    percentile interval is too narrow."""
    if n_scenarios < 2:
        return np.full(samples.shape[1], np.inf)
    return t_dist.ppf(1 - (1 - CONFIDENCE) / 2, n_scenarios - 1) * samples.std(axis=0, ddof=1)


class PairwiseRow(BaseModel):
    rank: int
    model: str
    prompt: str
    strength: float = Field(description="Bradley–Terry strength, log-odds, centred on 0.")
    ci_low: float
    ci_high: float
    tied_with_leader: bool = Field(
        description="The interval of the leader's advantage over this row reaches down to zero."
    )
    win_rate: float = Field(description="(wins + ties/2) / comparisons, over every judgement.")
    comparisons: int
    wins: int
    ties: int
    losses: int


class PairAgreement(BaseModel):
    pairs_judged_twice: int = Field(description="Pairs with two judges or more.")
    percent: float | None = Field(description="Share of judge pairs on one pair that agree.")
    alpha: float | None = Field(description="Krippendorff's alpha, choices as A=1, tie=0, B=−1.")


class PairwiseBoard(BaseModel):
    method: str
    confidence: float
    resamples: int
    judgements: int
    scenarios: int = Field(description="Scenarios with at least one judged pair.")
    thin: bool = Field(description=f"Fewer than {THIN_SCENARIOS} judged scenarios.")
    rows: list[PairwiseRow]
    agreement: PairAgreement


METHOD = (
    "Bradley–Terry strengths (log-odds, centred; ties = half a win each way; Gaussian prior "
    f"precision {PRIOR}), {CONFIDENCE:.0%} intervals: t × bootstrap standard error, scenarios "
    "resampled"
)


def agreement(judgements: list[PairJudgement]) -> PairAgreement:
    value = {"a": 1.0, "tie": 0.0, "b": -1.0}
    by_pair: dict[str, dict[str, float]] = defaultdict(dict)
    for j in judgements:
        by_pair[j.pair_id][j.judge] = value[j.choice]
    repeated = {pair: votes for pair, votes in by_pair.items() if len(votes) >= 2}
    same = total = 0
    for votes in repeated.values():
        choices = list(votes.values())
        for i, first in enumerate(choices):
            for second in choices[i + 1 :]:
                total += 1
                same += first == second
    judges = sorted({j.judge for j in judgements})
    pairs = sorted(by_pair)
    matrix = np.full((len(judges), len(pairs)), np.nan)
    for j in judgements:
        matrix[judges.index(j.judge), pairs.index(j.pair_id)] = value[j.choice]
    return PairAgreement(
        pairs_judged_twice=len(repeated),
        percent=same / total if total else None,
        alpha=krippendorff_alpha(matrix) if repeated else None,
    )


def board(run: Run, n_resamples: int = N_RESAMPLES) -> PairwiseBoard:
    """The pairwise leaderboard of a run from its recorded choices."""
    judgements = pair_judgements_of(run.id)
    pairs = {pair.pair_id: pair for pair in pairs_of(run)}
    rows = sorted(
        {(side.model, side.prompt) for pair in pairs.values() for side in (pair.a, pair.b)}
    )
    index = {row: i for i, row in enumerate(rows)}
    scenarios = sorted({pairs[j.pair_id].scenario_id for j in judgements if j.pair_id in pairs})
    winners, losers, outcome, scenario_of = [], [], [], []
    wins, ties, losses = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
    for j in judgements:
        pair = pairs.get(j.pair_id)
        if pair is None:
            continue
        a, b = index[(pair.a.model, pair.a.prompt)], index[(pair.b.model, pair.b.prompt)]
        winner, loser = (b, a) if j.choice == "b" else (a, b)
        winners.append(winner)
        losers.append(loser)
        outcome.append(0.5 if j.choice == "tie" else 1.0)
        scenario_of.append(scenarios.index(pair.scenario_id))
        if j.choice == "tie":
            ties[[a, b]] += 1
        else:
            wins[winner] += 1
            losses[loser] += 1
    w, lo = np.array(winners, dtype=int), np.array(losers, dtype=int)
    y, sc = np.array(outcome, dtype=float), np.array(scenario_of, dtype=int)
    theta = fit_strengths(w, lo, y, np.ones(len(y)), len(rows))
    seed = run.config.get("seed", 0)
    samples = bootstrap_strengths(w, lo, y, sc, len(rows), len(scenarios), seed, n_resamples)
    half = interval_half_width(samples, len(scenarios))
    order = sorted(range(len(rows)), key=lambda i: -theta[i])
    leader = order[0] if order else 0
    comparisons = wins + ties + losses
    result = []
    for rank, i in enumerate(order, start=1):
        advantage = theta[leader] - theta[i]
        advantage_half = interval_half_width(samples[:, [leader]] - samples[:, [i]], len(scenarios))
        result.append(
            PairwiseRow(
                rank=rank,
                model=rows[i][0],
                prompt=rows[i][1],
                strength=float(theta[i]),
                ci_low=float(theta[i] - half[i]),
                ci_high=float(theta[i] + half[i]),
                tied_with_leader=rank > 1 and bool(advantage - advantage_half[0] <= 0.0),
                win_rate=float((wins[i] + ties[i] / 2) / comparisons[i]) if comparisons[i] else 0.0,
                comparisons=int(comparisons[i]),
                wins=int(wins[i]),
                ties=int(ties[i]),
                losses=int(losses[i]),
            )
        )
    return PairwiseBoard(
        method=METHOD,
        confidence=CONFIDENCE,
        resamples=n_resamples,
        judgements=len(y),
        scenarios=len(scenarios),
        thin=len(scenarios) < THIN_SCENARIOS,
        rows=result,
        agreement=agreement([j for j in judgements if j.pair_id in pairs]),
    )


def table_cells(found: PairwiseBoard) -> tuple[list[str], list[list[str]]]:
    """Header and body of the pairwise table people read (terminal, Markdown)."""
    header = ["#", "model", "prompt", "strength", "95% CI", "win rate", "W/T/L"]
    body = [
        [
            f"≈{row.rank}" if row.tied_with_leader else str(row.rank),
            row.model,
            row.prompt,
            f"{row.strength:+.2f}",
            f"{row.ci_low:+.2f}…{row.ci_high:+.2f}",
            f"{row.win_rate:.0%}",
            f"{row.wins}/{row.ties}/{row.losses}",
        ]
        for row in found.rows
    ]
    return header, body


def unjudged(run: Run) -> int:
    """What nobody has judged yet: pairs of a pairwise run, else outputs."""
    if is_pairwise(run):
        return len(pending_pairs(run))
    return len(judging.pending_items(run))


def apply_any_file(text: str, source: str) -> tuple[str, dict[str, int]]:
    """`benchlib judge apply`: a pairs file or a rubric judge file, told by its `format`."""
    try:
        kind = json.loads(text).get("format")
    except (json.JSONDecodeError, AttributeError):
        kind = None
    return (apply_file if kind == FORMAT else judging.apply_file)(text, source)
