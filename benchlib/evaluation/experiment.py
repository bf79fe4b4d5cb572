"""An experiment's leaderboard: every finished run of the experiment pooled into one board.

Cells are content-addressed (`Cell.identity`: model and digest, prompt version and hash,
scenario and hash, rubric, parameters), so a cell run again in a later run is the same cell:
it counts once, with its latest result. What differs in content is kept apart: a prompt version
with several hashes makes one row per hash (`v1@abcd1234`), a model with several digests one row
per digest, a scenario with several hashes one scenario per hash. Judgements follow the output
they judged, not the run: a judgement of an output (cell identity, step, output hash) in any run
counts for that output wherever it is counted. Every counted output is scored again under the
newest run's rubric, as its own runs are (benchlib.evaluation.scoring), so the board has one
metric; judgements made under another rubric are left out and counted.
"""

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import col, select

from benchlib.errors import NotFound
from benchlib.evaluation import judging, scoring
from benchlib.evaluation.leaderboard import Leaderboard, build_leaderboard
from benchlib.store.db import session
from benchlib.store.records import FINISHED, Candidate, Cell, Judgement, Run, RunStatus, Score
from benchlib.store.runs import run_candidates, run_cells

HASH_LABEL = 8


class Contribution(BaseModel):
    """One finished run of the experiment and what it gave the board."""

    run_id: str
    status: RunStatus
    created_at: datetime
    cells: int = Field(description="Its cells counted: the latest result of their identity.")
    superseded: int = Field(description="Its cells a later run ran again (not counted).")
    judgements: int = Field(description="Judgements recorded on it that the board uses.")


class ExperimentLeaderboard(Leaderboard):
    """The leaderboard of an experiment: `Leaderboard` over its finished runs, with the runs
    that contributed and what was kept apart."""

    experiment: str
    rubric: str = Field(description="version@hash of the rubric every output is scored under.")
    runs: list[Contribution] = Field(description="Finished runs of the experiment, oldest first.")
    split: list[str] = Field(
        description="Names that stand for several contents, each shown as name@hash."
    )
    other_rubric_judgements: int = Field(
        description="Judgements made under another rubric than `rubric`: not used."
    )


def finished_runs(experiment: str) -> list[Run]:
    """The experiment's finished runs, oldest first."""
    query = select(Run).where(Run.experiment == experiment, col(Run.status).in_(FINISHED))
    with session() as s:
        return list(s.exec(query.order_by(col(Run.created_at), col(Run.id))))


def _labelled(cells: list[Cell]) -> tuple[list[Cell], list[str]]:
    """Copies of `cells` whose model, prompt version or scenario id carries `@hash` where that
    name stands for several contents among them; and which names those are."""
    parts = {
        "model": "model_digest",
        "prompt_version": "prompt_hash",
        "scenario_id": "scenario_hash",
    }
    contents: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    for cell in cells:
        for name, content in parts.items():
            contents[(name, getattr(cell, name))].add(getattr(cell, content))
    split = {key for key, hashes in contents.items() if len(hashes) > 1}
    labelled = []
    for cell in cells:
        copy = Cell(**cell.model_dump())
        for name, content in parts.items():
            if (name, getattr(cell, name)) in split:
                tag = (getattr(cell, content) or "unknown")[:HASH_LABEL]
                setattr(copy, name, f"{getattr(cell, name)}@{tag}")
        labelled.append(copy)
    names = [f"{name.split('_')[0]} {value}" for name, value in sorted(split)]
    return labelled, names


def _output_key(cell: Cell, candidate: Candidate) -> tuple[str, str, str]:
    """What a judgement judged: this output of this cell, in whichever run."""
    return cell.identity, candidate.step, candidate.output_hash


def experiment_leaderboard(experiment: str) -> ExperimentLeaderboard:
    """One row per (model, prompt version@hash) over the experiment's finished runs."""
    finished = finished_runs(experiment)
    if not finished:
        raise NotFound(f"experiment {experiment!r} has no finished run")
    newest = finished[-1]
    rubric = judging.rubric_of(newest)

    cell_of: dict[str, Cell] = {}
    latest: dict[str, Cell] = {}  # identity -> its cell in the newest run that has it
    for run in finished:
        for cell in run_cells(run.id):
            cell_of[cell.id] = cell
            latest[cell.identity] = cell
    counted = {cell.id for cell in latest.values()}
    candidates = [c for run in finished for c in run_candidates(run.id)]
    kept = [c for c in candidates if c.cell_id in counted]
    kept_by_key: dict[tuple[str, str, str], list[Candidate]] = defaultdict(list)
    for candidate in kept:
        kept_by_key[_output_key(cell_of[candidate.cell_id], candidate)].append(candidate)
    key_of = {c.id: _output_key(cell_of[c.cell_id], c) for c in candidates}

    run_ids = [run.id for run in finished]
    with session() as s:
        recorded = list(s.exec(select(Judgement).where(col(Judgement.run_id).in_(run_ids))))
        stored = list(s.exec(select(Score).where(col(Score.run_id).in_(run_ids))))
    # A judge's latest word on an output counts once, on each counted copy of that output.
    pooled: dict[tuple[str, int], Judgement] = {}
    used: dict[str, int] = defaultdict(int)
    current = [j for j in recorded if j.rubric_hash == rubric.hash]
    for j in sorted(current, key=lambda j: (j.created_at, j.id or 0)):
        targets = kept_by_key.get(key_of[j.candidate_id], [])
        used[j.run_id] += bool(targets)
        for target in targets:
            pooled[(j.judge, target.id)] = Judgement(
                **j.model_dump(exclude={"id", "candidate_id"}), candidate_id=target.id
            )
    judgements = scoring.composite_judgements(list(pooled.values()))
    human = scoring.human_values(judgements)

    values: dict[int, dict[str, float]] = defaultdict(dict)
    # The scorers' scores stand; what judges and the rubric make is made again here.
    judged = {scoring.COMPOSITE, scoring.AUTO_COMPOSITE, *(c.name for c in rubric.criteria)}
    judged |= {flag.name for flag in rubric.flags if not flag.automatic}
    scores = [row for row in stored if row.cell_id in counted and row.name not in judged]
    for row in scores:
        values[row.candidate_id][row.name] = row.value
    for candidate in kept:
        scores += scoring.judged_rows(rubric, candidate, values[candidate.id], human)

    cells, split = _labelled([cell_of[cell_id] for cell_id in sorted(counted)])
    board = build_leaderboard(
        rubric, cells, kept, scores, judgements, newest.config["seed"], rank_on=newest.rank_on
    )
    per_run: dict[str, int] = defaultdict(int)
    for cell_id in counted:
        per_run[cell_of[cell_id].run_id] += 1
    all_cells: dict[str, int] = defaultdict(int)
    for cell in cell_of.values():
        all_cells[cell.run_id] += 1
    return ExperimentLeaderboard(
        **dict(board),
        experiment=experiment,
        rubric=f"{rubric.version}@{rubric.hash}",
        runs=[
            Contribution(
                run_id=run.id,
                status=run.status,
                created_at=run.created_at,
                cells=per_run[run.id],
                superseded=all_cells[run.id] - per_run[run.id],
                judgements=used[run.id],
            )
            for run in finished
        ],
        split=split,
        other_rubric_judgements=len(recorded) - len(current),
    )
