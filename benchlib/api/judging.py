"""Judging over HTTP: the pending blind items of a run, submitting judgements, resuming."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from benchlib import bounds
from benchlib.api.policy import RunId
from benchlib.errors import BenchlibError
from benchlib.evaluation import autojudge, judging, pairwise, reports
from benchlib.pipeline import orchestration
from benchlib.store.records import RunStatus
from benchlib.store.runs import get_run

router = APIRouter(tags=["judging"])


class Pending(judging.JudgeFile):
    """The `benchlib judge export` file, with the counts a judge page shows."""

    total: int = Field(description="Items of the run.")
    pending: int = Field(description="Items still unjudged (by this judge, if one is given).")
    yours: list[judging.JudgeItem] = Field(
        description="Items this judge has judged, with their scores and comment, in the order "
        "judged (to change one); empty without a judge."
    )
    coverage: judging.Coverage
    status: RunStatus
    waiting: bool = Field(description="The run's flow is suspended until judges approve it.")


class Submission(BaseModel):
    judge: str = Field(min_length=1, max_length=200, description="Who judged (a name or an id).")
    items: list[judging.Scored] = Field(description="Scores per item, as in a judge file.")


class Applied(BaseModel):
    added: int
    updated: int
    unchanged: int
    pending: int = Field(description="Items this judge has not judged yet.")


class Resume(BaseModel):
    approve: bool = Field(True, description="Continue with what is judged (else wait again).")


class Resumed(BaseModel):
    flow_run_id: str
    pending: int = Field(description="Items nobody has judged.")


@router.get("/runs/{run_id}/judging")
def pending_items(
    run_id: RunId, judge: Annotated[str, Query(max_length=bounds.MAX_JUDGE)] = ""
) -> Pending:
    """The rubric and the blind items nobody has judged yet, or that `judge` has not; what
    `judge` judged already; how many judges each item has; whether the run still waits."""
    run = get_run(run_id)
    everything = judging.judge_items(run)
    judgements = judging.judgements_of(run.id)
    left = judging.pending_items(run, judge or None, everything)
    exported = judging.export_file(run, judge, left)
    return Pending(
        **dict(exported),
        total=len(everything),
        pending=len(left),
        yours=judging.judged_by(everything, judgements, judge) if judge else [],
        coverage=judging.coverage(
            [i.candidate_id for i in everything], [(j.candidate_id, j.judge) for j in judgements]
        ),
        status=run.status,
        waiting=run.status == RunStatus.awaiting_judge,
    )


@router.post("/runs/{run_id}/judgements")
def submit_judgements(run_id: RunId, submission: Submission) -> Applied:
    """Validated like `benchlib judge apply` (every problem listed, nothing applied if any);
    a completed run's leaderboard is refreshed."""
    run = get_run(run_id)
    counts = judging.apply_judgements(run.id, submission.judge, submission.items, "body")
    reports.refresh_leaderboard(run.id)
    return Applied(**counts, pending=len(judging.pending_items(run, submission.judge)))


@router.post("/runs/{run_id}/resume")
def resume(run_id: RunId, body: Resume) -> Resumed:
    """Continue the flow run waiting for judges (409 when it is not waiting)."""
    run = get_run(run_id)
    flow_run_id = orchestration.resume_run(run, body.approve)
    return Resumed(flow_run_id=flow_run_id, pending=pairwise.unjudged(run))


class PendingPairs(pairwise.PairsFile):
    """The `benchlib judge export` file of a pairwise run, with what the judge page shows."""

    total: int = Field(description="Pairs of the run.")
    pending: int = Field(description="Pairs still unjudged (by this judge, if one is given).")
    yours: list[pairwise.PairItem] = Field(
        description="Pairs this judge has judged, with their choice and comment, in the order "
        "judged (to change one); empty without a judge."
    )
    coverage: judging.Coverage
    status: RunStatus
    waiting: bool = Field(description="The run's flow is suspended until judges approve it.")


class PairSubmission(BaseModel):
    judge: str = Field(description="Who judged (a name or an id).")
    items: list[pairwise.Chosen] = Field(description="A choice (a, b or tie) per pair.")


@router.get("/runs/{run_id}/pairs")
def pending_pairs(
    run_id: RunId, judge: Annotated[str, Query(max_length=bounds.MAX_JUDGE)] = ""
) -> PendingPairs:
    """For `judge_mode: pairwise`: the blind pairs nobody has judged yet, or that `judge` has
    not; what `judge` chose already; how many judges each pair has."""
    run = get_run(run_id)
    if not pairwise.is_pairwise(run):
        raise BenchlibError(f"run {run.id} is judged on its rubric: GET /api/runs/{run.id}/judging")
    pairs = pairwise.pairs_of(run)
    judgements = pairwise.pair_judgements_of(run.id)
    left = pairwise.pending_pairs(run, judge or None, pairs)
    exported = pairwise.export_file(run, judge, left)
    return PendingPairs(
        **dict(exported),
        total=len(pairs),
        pending=len(left),
        yours=pairwise.judged_by(pairs, judgements, judge) if judge else [],
        coverage=judging.coverage(
            [p.pair_id for p in pairs], [(j.pair_id, j.judge) for j in judgements]
        ),
        status=run.status,
        waiting=run.status == RunStatus.awaiting_judge,
    )


@router.post("/runs/{run_id}/pair-judgements")
def submit_pair_judgements(run_id: RunId, submission: PairSubmission) -> Applied:
    """Validated like `benchlib judge apply` on a pairs file (nothing applied if any problem)."""
    run = get_run(run_id)
    counts = pairwise.apply_choices(run.id, submission.judge, submission.items, "body")
    return Applied(**counts, pending=len(pairwise.pending_pairs(run, submission.judge)))


@router.get("/runs/{run_id}/pairwise")
def pairwise_leaderboard(run_id: RunId) -> pairwise.PairwiseBoard:
    """Bradley–Terry strengths with bootstrap intervals (scenarios resampled), win rates and
    agreement between judges on pairs judged twice or more."""
    run = get_run(run_id)
    if not pairwise.is_pairwise(run):
        raise BenchlibError(f"run {run.id} is judged on its rubric: see its leaderboard")
    return pairwise.board(run)


@router.get("/runs/{run_id}/agreement")
def agreement(run_id: RunId) -> autojudge.Agreement:
    """How far each model judge agrees with people on the items both judged (Krippendorff's
    alpha per criterion) and its bias (model − people, bootstrap interval over scenarios)."""
    return autojudge.calibration(get_run(run_id).id)
