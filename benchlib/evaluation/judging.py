"""Blind human judging: the items a judge sees, the judge file, and applying judgements.

An item is one output to judge (of the step(s) the run ranks on: see benchlib.evaluation.ranking)
with its scenario context and an opaque id; nothing in it names the model or the prompt, and the
order is shuffled with the run's seed. Every way of judging (file, terminal, Prefect UI, API) ends
in `apply_judgements`.
"""

import json
import random
from collections import defaultdict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from sqlmodel import select

from benchlib import bounds
from benchlib.errors import BenchlibError, describe_validation_error
from benchlib.evaluation.ranking import is_ranked
from benchlib.spec.hashing import content_hash
from benchlib.spec.rubric import Rubric
from benchlib.store.db import session
from benchlib.store.records import Judgement, Run
from benchlib.store.runs import get_run, run_candidates, run_cells
from benchlib.tracking import outbox as tracking_outbox
from benchlib.tracking.outbox import group_name

# Judge ids of model judges (benchlib.evaluation.autojudge); every other judge is a person.
MODEL_JUDGE_PREFIX = "model:"
# The `judge` settings under which a run waits for people.
WAITS_FOR_PEOPLE = ("human", "human+model")

FORMAT = "benchlib-judge-v1"
INSTRUCTIONS = (
    "Score every criterion of an item with one of its levels (read the level descriptions and "
    "their calibrated examples first), or leave all of an item's scores null to skip it. Set "
    "`judge` to your name or id. Then: benchlib judge apply FILE"
)


def _level(value: Any) -> Any:
    """A score is a rubric level: a number, never `true` (an int to Python) or `"3"`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a whole number, a level of the rubric")
    return value


Level = Annotated[int, BeforeValidator(_level)]
ItemId = Annotated[str, Field(max_length=bounds.MAX_RUN_ID)]
Comment = Annotated[str, Field(max_length=bounds.MAX_COMMENT)]


class JudgeItem(BaseModel):
    item_id: ItemId
    context: dict[str, Any] = Field(description="The scenario the output answers.")
    output: str
    scores: dict[str, Level | None] = Field(description="Criterion -> level; null = not judged.")
    comment: Comment = ""


class JudgeFile(BaseModel):
    format: Literal["benchlib-judge-v1"]
    run_id: str
    rubric_version: str
    rubric_hash: str
    rubric: dict[str, Any] = Field(description="Criteria with their levels and examples.")
    instructions: str = INSTRUCTIONS
    judge: str = Field(
        "", max_length=bounds.MAX_JUDGE, description="Who judged: fill in before applying."
    )
    experiment: str = Field(
        "",
        description="Set when the items span an experiment's runs (`run_id` is then empty): "
        "applying writes each item to its own run.",
    )
    items: list[JudgeItem]


class Item(BaseModel):
    """An item with what only benchlib may know (never exported)."""

    item_id: str
    candidate_id: int
    cell_id: str
    context: dict[str, Any]
    output: str


def _criteria(rubric: Rubric) -> list[str]:
    return [c.name for c in rubric.criteria]


def judge_items(run: Run) -> list[Item]:
    """Every output the run is ranked on, to judge, blind and shuffled with the run's seed."""
    cells = {cell.id: cell for cell in run_cells(run.id)}
    items = [
        Item(
            item_id="i" + content_hash([run.id, candidate.id])[:10],
            candidate_id=candidate.id,
            cell_id=candidate.cell_id,
            context=cells[candidate.cell_id].scenario_vars,
            output=candidate.text,
        )
        for candidate in run_candidates(run.id)
        if candidate.error is None
        and is_ranked(run.rank_on, cells[candidate.cell_id].steps, candidate.step)
    ]
    items.sort(key=lambda item: item.item_id)
    random.Random(run.config.get("seed", 0)).shuffle(items)
    return items


def judgements_of(run_id: str) -> list[Judgement]:
    with session() as s:
        return list(s.exec(select(Judgement).where(Judgement.run_id == run_id)))


class Coverage(BaseModel):
    """How far judging has come across judges."""

    items: int = Field(description="Outputs to judge in the run.")
    judges: dict[str, int] = Field(description="Judge -> outputs they judged.")
    by_judges: dict[int, int] = Field(
        description="Number of judges -> outputs judged by that many (0 = nobody yet)."
    )


def coverage(items: list[Any], votes: list[tuple[Any, str]]) -> Coverage:
    """Of `items` (ids), given `votes` as (item id, judge): outputs here, pairs when pairwise."""
    per_item: dict[Any, set[str]] = defaultdict(set)
    judges: dict[str, int] = defaultdict(int)
    for item, judge in votes:
        per_item[item].add(judge)
        judges[judge] += 1
    counts = [len(per_item.get(item, ())) for item in items]
    return Coverage(
        items=len(items),
        judges=dict(sorted(judges.items())),
        by_judges={n: counts.count(n) for n in sorted(set(counts) | {0})},
    )


def judged_by(items: list[Item], judgements: list[Judgement], judge: str) -> list[JudgeItem]:
    """The items `judge` has judged, with their scores and comment, in the order judged: the
    judge page goes back through them to change one."""
    mine = sorted((j for j in judgements if j.judge == judge), key=lambda j: (j.created_at, j.id))
    by_candidate = {item.candidate_id: item for item in items}
    return [
        JudgeItem(
            item_id=item.item_id,
            context=item.context,
            output=item.output,
            scores=dict(j.scores),
            comment=j.comment,
        )
        for j in mine
        if (item := by_candidate.get(j.candidate_id)) is not None
    ]


def pending_items(
    run: Run, judge: str | None = None, items: list[Item] | None = None
) -> list[Item]:
    """Items no person has judged yet (a model judge's judgement leaves an item to people),
    or, given a judge, that this judge has not judged; of `items` when the caller has them
    already (they are rebuilt from every candidate)."""
    done = {
        j.candidate_id
        for j in judgements_of(run.id)
        if (j.judge == judge if judge else not j.judge.startswith(MODEL_JUDGE_PREFIX))
    }
    everything = judge_items(run) if items is None else items
    return [item for item in everything if item.candidate_id not in done]


def pending_groups(run: Run) -> set[tuple[str, str]]:
    """The (model, prompt version) pairs with outputs still awaiting a judge; none when the
    run does not wait for judges."""
    if run.config.get("judge") not in WAITS_FOR_PEOPLE:
        return set()
    cells = {cell.id: cell for cell in run_cells(run.id)}
    return {
        (cells[item.cell_id].model, cells[item.cell_id].prompt_version)
        for item in pending_items(run)
    }


def _tell_mlflow(run: Run, cell_ids: set[str]) -> None:
    """New judgements reach MLflow: the judged cells' traces get the judges' feedback (once the
    run is scored, or at once with traces `all`; before that, scoring writes them), and the
    (model, prompt) runs their `judge_pending` tag."""
    pending = pending_groups(run)
    groups = {(c.model, c.prompt_version) for c in run_cells(run.id)}
    update = {
        "tags": {"judge_pending": str(bool(pending)).lower()},
        "groups": {
            group_name(*group): {"tags": {"judge_pending": str(group in pending).lower()}}
            for group in groups
        },
    }
    mode = run.config.get("mlflow_traces", "final")
    with session() as s:
        tracking_outbox.enqueue(s, run.id, "update", update)
        if mode == "all" or (mode == "final" and get_run(run.id).scored_at is not None):
            tracking_outbox.enqueue(s, run.id, "traces", {"cells": sorted(cell_ids)})


def rubric_of(run: Run) -> Rubric:
    return Rubric.model_validate(run.rubric)


def export_file(run: Run, judge: str = "", items: list[Item] | None = None) -> JudgeFile:
    """The judge file of `items` (default: what `judge` has left, or, without a judge, what
    nobody has judged: as the API's judging endpoint)."""
    rubric = rubric_of(run)
    if items is None:
        items = pending_items(run, judge or None)
    return JudgeFile(
        format=FORMAT,
        run_id=run.id,
        rubric_version=rubric.version,
        rubric_hash=rubric.hash,
        rubric=rubric.model_dump(include={"version", "description", "criteria"}),
        judge=judge,
        items=[
            JudgeItem(
                item_id=item.item_id,
                context=item.context,
                output=item.output,
                scores=dict.fromkeys(_criteria(rubric)),
            )
            for item in items
        ],
    )


def parse_file(text: str, source: str) -> JudgeFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchlibError(f"{source}: malformed JSON: {exc}") from None
    try:
        return JudgeFile.model_validate(data)
    except ValidationError as exc:
        raise BenchlibError(describe_validation_error(exc, source)) from None


class Scored(BaseModel):
    item_id: ItemId
    scores: dict[str, Level]
    comment: Comment = ""


def validate(run: Run, judge: str, scored: list[Scored], source: str) -> list[tuple[Item, Scored]]:
    """Every problem at once (nothing is applied when there is one)."""
    rubric = rubric_of(run)
    levels = {c.name: c.scores for c in rubric.criteria}
    items = {item.item_id: item for item in judge_items(run)}
    problems, seen, accepted = [], set(), []
    if not judge.strip():
        problems.append("judge: empty; say who judged (a name or an id)")
    elif len(judge) > bounds.MAX_JUDGE or not judge.isprintable():
        problems.append(
            f"judge: {judge[:40]!r}: expected a name or an id of at most {bounds.MAX_JUDGE} "
            "printable characters"
        )
    for entry in scored:
        where = f"item {entry.item_id}"
        if entry.item_id in seen:
            problems.append(f"{where}: appears more than once")
            continue
        seen.add(entry.item_id)
        if entry.item_id not in items:
            problems.append(f"{where}: unknown item for run {run.id}")
            continue
        unknown = sorted(set(entry.scores) - set(levels))
        if unknown:
            problems.append(f"{where}: unknown criteria {unknown} (rubric: {sorted(levels)})")
        missing = sorted(set(levels) - set(entry.scores))
        if missing:
            problems.append(f"{where}: missing scores for {missing}")
        for name, value in entry.scores.items():
            if name in levels and value not in levels[name]:
                problems.append(
                    f"{where}: {name} = {value:g} is out of range "
                    f"{min(levels[name])}–{max(levels[name])}"
                )
        accepted.append((items[entry.item_id], entry))
    if problems:
        raise BenchlibError(
            f"{source}: {len(problems)} problem(s), nothing applied:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return accepted


def apply_judgements(run_id: str, judge: str, scored: list[Scored], source: str) -> dict[str, int]:
    """Validate everything, then write in one transaction; applying twice changes nothing."""
    run = get_run(run_id)
    rubric = rubric_of(run)
    accepted = validate(run, judge, scored, source)
    counts: defaultdict[str, int] = defaultdict(int)
    with session() as s:
        existing = {
            j.candidate_id: j
            for j in s.exec(
                select(Judgement).where(Judgement.run_id == run.id, Judgement.judge == judge)
            )
        }
        for item, entry in accepted:
            previous = existing.get(item.candidate_id)
            scores: dict[str, float] = dict(entry.scores)  # levels, stored as the numbers scored
            if previous is None:
                s.add(
                    Judgement(
                        run_id=run.id,
                        candidate_id=item.candidate_id,
                        judge=judge,
                        rubric_version=rubric.version,
                        rubric_hash=rubric.hash,
                        scores=scores,
                        comment=entry.comment,
                    )
                )
                counts["added"] += 1
            elif previous.scores != scores or previous.comment != entry.comment:
                previous.scores, previous.comment = scores, entry.comment
                s.add(previous)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
    if counts["added"] or counts["updated"]:
        _tell_mlflow(run, {item.cell_id for item, _ in accepted})
    return {key: counts[key] for key in ("added", "updated", "unchanged")}


def filled(judge_file: JudgeFile) -> list[Scored]:
    """The items of a filled file that carry scores (an item left all null is skipped)."""
    return [
        Scored(
            item_id=item.item_id,
            scores={k: v for k, v in item.scores.items() if v is not None},
            comment=item.comment,
        )
        for item in judge_file.items
        if any(v is not None for v in item.scores.values())
    ]


def check_rubric(judge_file: JudgeFile, rubric: Rubric, whose: str, source: str) -> None:
    if (judge_file.rubric_version, judge_file.rubric_hash) != (rubric.version, rubric.hash):
        raise BenchlibError(
            f"{source}: rubric {judge_file.rubric_version}@{judge_file.rubric_hash} is not the "
            f"{whose} rubric {rubric.version}@{rubric.hash}: export a new file"
        )


def apply_file(text: str, source: str) -> tuple[str, dict[str, int]]:
    """Apply a filled judge file; returns its run id and what changed."""
    judge_file = parse_file(text, source)
    if judge_file.experiment:
        raise BenchlibError(
            f"{source}: the judge file of experiment {judge_file.experiment!r}: apply it with "
            "`benchlib judge apply`"
        )
    run = get_run(judge_file.run_id)
    if run.id != judge_file.run_id:
        raise BenchlibError(f"{source}: run_id {judge_file.run_id!r} is not a run id")
    check_rubric(judge_file, rubric_of(run), "run's", source)
    return run.id, apply_judgements(run.id, judge_file.judge, filled(judge_file), source)
