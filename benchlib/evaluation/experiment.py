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

The experiment's judge file holds what the board still needs judged: the outputs it counts
that no run of the experiment has a judgement of; applying it writes each item to its own run.
"""

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import col, select

from benchlib.errors import BenchlibError, NotFound
from benchlib.evaluation import judging, pairwise, scoring
from benchlib.evaluation.leaderboard import Leaderboard, build_leaderboard
from benchlib.spec.rubric import Rubric
from benchlib.store.db import session
from benchlib.store.records import (
    FINISHED,
    Candidate,
    Cell,
    Judgement,
    Run,
    RunStatus,
    Score,
    stored_id,
)
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


@dataclass
class Pool:
    """What an experiment's finished runs hold, each cell identity once."""

    runs: list[Run]
    rubric: Rubric = field(init=False)
    cell_of: dict[str, Cell] = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)
    candidates: list[Candidate] = field(default_factory=list)
    key_of: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    judgements: list[Judgement] = field(default_factory=list)
    """Judgements under `rubric`, oldest first."""
    other_rubric: int = 0

    def __post_init__(self) -> None:
        self.rubric = judging.rubric_of(self.runs[-1])


def pool(experiment: str) -> Pool:
    """The experiment's finished runs, their cells (the latest of each identity counted), their
    outputs with what each judged output is, and the judgements under the newest rubric."""
    finished = finished_runs(experiment)
    if not finished:
        raise NotFound(f"experiment {experiment!r} has no finished run")
    found = Pool(finished)
    latest: dict[str, Cell] = {}  # identity -> its cell in the newest run that has it
    for run in finished:
        for cell in run_cells(run.id):
            found.cell_of[cell.id] = cell
            latest[cell.identity] = cell
    found.counted = {cell.id for cell in latest.values()}
    found.candidates = [c for run in finished for c in run_candidates(run.id)]
    found.key_of = {
        stored_id(c): _output_key(found.cell_of[c.cell_id], c) for c in found.candidates
    }
    run_ids = [run.id for run in finished]
    with session() as s:
        recorded = list(s.exec(select(Judgement).where(col(Judgement.run_id).in_(run_ids))))
    found.judgements = sorted(
        (j for j in recorded if j.rubric_hash == found.rubric.hash),
        key=lambda j: (j.created_at, j.id or 0),
    )
    found.other_rubric = len(recorded) - len(found.judgements)
    return found


def experiment_leaderboard(experiment: str) -> ExperimentLeaderboard:
    """One row per (model, prompt version@hash) over the experiment's finished runs."""
    found = pool(experiment)
    finished, rubric, cell_of, counted = found.runs, found.rubric, found.cell_of, found.counted
    newest = finished[-1]
    kept = [c for c in found.candidates if c.cell_id in counted]
    kept_by_key: dict[tuple[str, str, str], list[Candidate]] = defaultdict(list)
    for candidate in kept:
        kept_by_key[found.key_of[stored_id(candidate)]].append(candidate)
    with session() as s:
        run_ids = [run.id for run in finished]
        stored = list(s.exec(select(Score).where(col(Score.run_id).in_(run_ids))))
    # A judge's latest word on an output counts once, on each counted copy of that output.
    pooled: dict[tuple[str, int], Judgement] = {}
    used: dict[str, int] = defaultdict(int)
    for j in found.judgements:
        targets = kept_by_key.get(found.key_of[j.candidate_id], [])
        used[j.run_id] += bool(targets)
        for target in targets:
            pooled[(j.judge, stored_id(target))] = Judgement(
                **j.model_dump(exclude={"id", "candidate_id"}), candidate_id=stored_id(target)
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
        scores += scoring.judged_rows(rubric, candidate, values[stored_id(candidate)], human)

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
        other_rubric_judgements=found.other_rubric,
    )


def pending_items(found: Pool, judge: str = "") -> list[tuple[Run, judging.Item]]:
    """The outputs the board counts that nobody (or, given one, `judge`) has judged in any run
    of the experiment, from the runs under the board's rubric: blind, shuffled with the newest
    run's seed, each with the run it belongs to."""
    done = {found.key_of[j.candidate_id] for j in found.judgements if not judge or j.judge == judge}
    items = [
        (run, item)
        for run in found.runs
        if judging.rubric_of(run).hash == found.rubric.hash
        for item in judging.judge_items(run)
        if item.cell_id in found.counted and found.key_of[item.candidate_id] not in done
    ]
    items.sort(key=lambda pair: pair[1].item_id)
    random.Random(found.runs[-1].config.get("seed", 0)).shuffle(items)
    return items


def export_file(experiment: str, judge: str = "") -> judging.JudgeFile:
    """One judge file for every output the experiment's board still needs judged (item ids
    are unique across runs: they hash the run with the output)."""
    found = pool(experiment)
    refuse_pairwise(found)
    items = [item for _, item in pending_items(found, judge)]
    exported = judging.export_file(found.runs[-1], judge, items)
    return exported.model_copy(update={"run_id": "", "experiment": experiment})


def refuse_pairwise(found: Pool) -> None:
    pairwise_runs = [run.id for run in found.runs if pairwise.is_pairwise(run)]
    if pairwise_runs:
        raise BenchlibError(
            f"runs {pairwise_runs} are judged in pairs: export their pairs run by run "
            "(`benchlib judge export RUN`)"
        )


def apply_file(judge_file: judging.JudgeFile, source: str) -> dict[str, dict[str, int]]:
    """Apply an experiment's judge file: each item to its own run; every problem of every run
    is found before anything is written. Returns what changed per run."""
    found = pool(judge_file.experiment)
    judging.check_rubric(judge_file, found.rubric, "experiment's", source)
    run_of = {
        item.item_id: run
        for run in found.runs
        if judging.rubric_of(run).hash == found.rubric.hash
        for item in judging.judge_items(run)
    }
    scored = judging.filled(judge_file)
    unknown = [entry.item_id for entry in scored if entry.item_id not in run_of]
    if unknown:
        raise BenchlibError(
            f"{source}: {len(unknown)} problem(s), nothing applied:\n"
            + "\n".join(
                f"  - item {item_id}: unknown item for experiment {judge_file.experiment!r}"
                for item_id in unknown
            )
        )
    by_run: dict[str, list[judging.Scored]] = defaultdict(list)
    runs_by_id = {run.id: run for run in found.runs}
    for entry in scored:
        by_run[run_of[entry.item_id].id].append(entry)
    for run_id, entries in by_run.items():
        judging.validate(runs_by_id[run_id], judge_file.judge, entries, source)
    return {
        run_id: judging.apply_judgements(run_id, judge_file.judge, entries, source)
        for run_id, entries in by_run.items()
    }
