"""Judging over HTTP: the pending blind items of a run, submitting judgements, resuming."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from benchlib import judging, orchestration, reports
from benchlib.records import RunStatus
from benchlib.runs import get_run

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
    judge: str = Field(description="Who judged (a name or an id).")
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
def pending_items(run_id: str, judge: Annotated[str, Query(max_length=200)] = "") -> Pending:
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
        coverage=judging.coverage(everything, judgements),
        status=run.status,
        waiting=run.status == RunStatus.awaiting_judge,
    )


@router.post("/runs/{run_id}/judgements")
def submit_judgements(run_id: str, submission: Submission) -> Applied:
    """Validated like `benchlib judge apply` (every problem listed, nothing applied if any);
    a completed run's leaderboard is refreshed."""
    run = get_run(run_id)
    counts = judging.apply_judgements(run.id, submission.judge, submission.items, "body")
    reports.refresh_leaderboard(run.id)
    return Applied(**counts, pending=len(judging.pending_items(run, submission.judge)))


@router.post("/runs/{run_id}/resume")
def resume(run_id: str, body: Resume) -> Resumed:
    """Continue the flow run waiting for judges (409 when it is not waiting)."""
    run = get_run(run_id)
    flow_run_id = orchestration.resume_run(run, body.approve)
    return Resumed(flow_run_id=flow_run_id, pending=len(judging.pending_items(run)))
