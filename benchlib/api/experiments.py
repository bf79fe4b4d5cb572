"""Experiments: what the admin dashboard lists first, and their leaderboards across runs."""

from typing import Annotated

from fastapi import APIRouter, Path

from benchlib.api.policy import MAX_STRING
from benchlib.evaluation.experiment import ExperimentLeaderboard, experiment_leaderboard
from benchlib.store import runs

router = APIRouter(tags=["experiments"])


@router.get("/experiments")
def list_experiments() -> list[runs.ExperimentSummary]:
    """Every experiment with its number of runs and its latest run, most recent first."""
    return runs.experiment_summaries()


@router.get("/experiments/{name}/leaderboard")
def leaderboard(
    name: Annotated[str, Path(min_length=1, max_length=MAX_STRING)],
) -> ExperimentLeaderboard:
    """One row per (model, prompt version@hash) over the experiment's finished runs: each cell
    identity once (its latest result), judgements from every run of the same output; which
    runs contributed (404 when the experiment has no finished run)."""
    return experiment_leaderboard(name)
