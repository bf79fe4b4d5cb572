"""Scoring a run: the suite's scorers on every output, then the rubric composites.

Idempotent: re-scoring replaces the run's scores in one transaction, never adds to them. Human
judgements (under the rubric the run was planned with) become one score per criterion, the mean over
judges; every composite row stores the formula and the rubric version it was computed with.
"""

from collections import defaultdict
from typing import Literal

from sqlmodel import col, delete, select

from benchlib.evaluation import judging
from benchlib.evaluation.scorers import VERSION, ScoreFn, ScoreInput, ScoreValue, build_scorers
from benchlib.spec.rubric import Rubric
from benchlib.spec.suite import Suite, load_suite
from benchlib.store.db import session
from benchlib.store.records import Candidate, Cell, Judgement, Run, Score, stored_id, utcnow
from benchlib.store.runs import get_run, run_candidates, run_cells
from benchlib.tracking import outbox as tracking_outbox

AUTO_COMPOSITE = "auto_composite"
MODEL_JUDGE_PREFIX = judging.MODEL_JUDGE_PREFIX
COMPOSITE = "composite"


def _score(
    candidate: Candidate,
    name: str,
    value: float,
    *,
    version: str,
    explanation: str = "",
    formula: str | None = None,
) -> Score:
    return Score(
        run_id=candidate.run_id,
        cell_id=candidate.cell_id,
        candidate_id=stored_id(candidate),
        name=name,
        value=value,
        explanation=explanation,
        version=version,
        formula=formula,
    )


def _composite_rows(rubric: Rubric, candidate: Candidate, values: dict[str, float]) -> list[Score]:
    rows = []
    for name, automatic in ((AUTO_COMPOSITE, True), (COMPOSITE, False)):
        value = rubric.composite_score(values, automatic=automatic)
        if value is not None:
            version, formula = f"{rubric.version}@{rubric.hash}", rubric.formula(automatic)
            rows.append(_score(candidate, name, value, version=version, formula=formula))
    return rows


def human_values(judgements: list[Judgement]) -> dict[int, dict[str, tuple[float, int]]]:
    """Per candidate, per criterion: the mean over judges and how many judged it."""
    collected: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for judgement in judgements:
        for name, value in judgement.scores.items():
            collected[judgement.candidate_id][name].append(value)
    return {
        candidate: {name: (sum(v) / len(v), len(v)) for name, v in names.items()}
        for candidate, names in collected.items()
    }


def composite_judgements(judgements: list[Judgement], judges: str = "human") -> list[Judgement]:
    """The judgements the composite uses, by the run's `judges` setting: human (the default):
    people's where any exist, else the model judges' (`benchlib judge auto`); model: the model
    judges' only; all: both. Never a failed model answer; the leaderboard says whose it used."""
    scored = [j for j in judgements if j.scores]
    people = [j for j in scored if not j.judge.startswith(MODEL_JUDGE_PREFIX)]
    models = [j for j in scored if j.judge.startswith(MODEL_JUDGE_PREFIX)]
    return {"model": models, "all": scored}.get(judges, people or models)


def judges_of(run: Run) -> Literal["human", "model", "all"]:
    return run.config.get("judges", "human")


def score_cell(
    suite: Suite,
    rubric: Rubric,
    scorers: dict[str, ScoreFn],
    cell: Cell,
    candidates: list[Candidate],
    human: dict[int, dict[str, tuple[float, int]]],
) -> list[Score]:
    """Scores for one cell's outputs; outputs a failed chain step never produced score 0."""
    by_step: dict[str, list[Candidate]] = defaultdict(list)
    by_attempt: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_step[candidate.step].append(candidate)
        by_attempt[candidate.index].append(candidate)
    version = suite.versions.get(cell.prompt_version)
    steps = {step.name: step for step in version.steps} if version else {}
    rows = []
    for candidate in candidates:
        step = steps.get(candidate.step)
        item = ScoreInput(
            candidate=candidate,
            schema=suite.schema_for(step) if step else {},
            policies=suite.policies_for(step) if step else [],
            scenario=cell.scenario_vars,
            siblings=[c for c in by_step[candidate.step] if c is not candidate and not c.error],
            earlier=[c for c in by_attempt[candidate.index] if c.step_index < candidate.step_index],
        )
        values = {}
        for name, fn in scorers.items():
            # An output that a failed chain step never produced gets no credit.
            result = ScoreValue(0.0, candidate.error) if candidate.error else fn(item)
            values[name] = result.value
            rows.append(
                _score(
                    candidate, name, result.value, explanation=result.explanation, version=VERSION
                )
            )
        rows.extend(judged_rows(rubric, candidate, values, human))
    return rows


def judged_rows(
    rubric: Rubric,
    candidate: Candidate,
    values: dict[str, float],
    human: dict[int, dict[str, tuple[float, int]]],
) -> list[Score]:
    """The candidate's human scores (mean over judges), then its composites of `values` (the
    objective scores) and those."""
    rubric_version = f"{rubric.version}@{rubric.hash}"
    rows = []
    for name, (mean, judges) in human.get(stored_id(candidate), {}).items():
        values[name] = mean
        why = f"mean of {judges} judge(s)"
        rows.append(_score(candidate, name, mean, explanation=why, version=rubric_version))
    return rows + _composite_rows(rubric, candidate, values)


def rescore_judgements(run_id: str) -> int:
    """After new judgements on a scored run: its human scores and composites again, on the
    objective scores already recorded. Judging needs neither the suite folder (a run made with
    a relative path is judged from anywhere) nor the scorers. Returns the rows written."""
    run = get_run(run_id)
    rubric = judging.rubric_of(run)
    current = [j for j in judging.judgements_of(run.id) if j.rubric_hash == rubric.hash]
    human = human_values(composite_judgements(current, judges_of(run)))
    candidates = run_candidates(run.id)
    values: dict[int, dict[str, float]] = defaultdict(dict)
    with session() as s:
        objective = s.exec(select(Score).where(Score.run_id == run.id, Score.version == VERSION))
        for row in objective:
            values[row.candidate_id][row.name] = row.value
        rows = [
            row
            for candidate in candidates
            for row in judged_rows(rubric, candidate, values[stored_id(candidate)], human)
        ]
        s.exec(delete(Score).where(col(Score.run_id) == run.id, col(Score.version) != VERSION))
        s.add_all(rows)
        s.get_one(Run, run.id).scored_at = utcnow()
        tracking_outbox.enqueue(s, run.id, "cell", {})
    return len(rows)


def score_run(run_id: str) -> int:
    """Score the run's candidates and mark it scored; returns how many scores were written."""
    run = get_run(run_id)
    suite = load_suite(run.config["suite"])
    scorers = build_scorers(suite)
    cells = run_cells(run.id)
    per_cell: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in run_candidates(run.id):
        per_cell[candidate.cell_id].append(candidate)
    # The rubric the run was planned with (as judges saw it), not the suite's current file.
    rubric = judging.rubric_of(run)
    judgements = judging.judgements_of(run.id)
    current = [j for j in judgements if j.rubric_hash == rubric.hash]
    human = human_values(composite_judgements(current, judges_of(run)))
    scores_by_cell = {
        cell.id: score_cell(suite, rubric, scorers, cell, per_cell[cell.id], human)
        for cell in cells
    }
    with session() as s:
        s.exec(delete(Score).where(col(Score.run_id) == run.id))
        for rows in scores_by_cell.values():
            s.add_all(rows)
        s.get_one(Run, run.id).scored_at = utcnow()
        tracking_outbox.enqueue(s, run.id, "cell", {})  # the cells table shows the scores
        if run.config.get("mlflow_traces", "final") != "off":
            tracking_outbox.enqueue(s, run.id, "traces", {})  # every trace, its scores with it
    return sum(len(rows) for rows in scores_by_cell.values())
