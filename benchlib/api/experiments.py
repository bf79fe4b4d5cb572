"""Experiments: what the admin dashboard lists first."""

from fastapi import APIRouter

from benchlib.store import runs

router = APIRouter(tags=["experiments"])


@router.get("/experiments")
def list_experiments() -> list[runs.ExperimentSummary]:
    """Every experiment with its number of runs and its latest run, most recent first."""
    return runs.experiment_summaries()
