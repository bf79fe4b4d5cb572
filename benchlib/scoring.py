"""Scoring a run: every objective scorer on every candidate, written to the DB and to MLflow.

Idempotent: re-scoring replaces the run's scores in one transaction, never adds to them.
"""

from collections import defaultdict

from sqlmodel import delete

from benchlib import tracking
from benchlib.db import session
from benchlib.records import Score
from benchlib.runs import get_run, run_candidates, run_cells
from benchlib.scorers import REGISTRY, VERSION, check_scorers
from benchlib.suite import load_suite


def score_run(run_id: str) -> int:
    """Score the run's candidates; returns how many scores were written."""
    run = get_run(run_id)
    suite = load_suite(run.config["suite"])
    check_scorers(suite)
    scores = [
        Score(
            run_id=run.id,
            cell_id=candidate.cell_id,
            candidate_id=candidate.id,
            name=name,
            value=result.value,
            explanation=result.explanation,
            version=VERSION,
        )
        for candidate in run_candidates(run.id)
        for name in suite.spec.scorers
        for result in [REGISTRY[name](candidate, suite)]
    ]
    with session() as s:
        s.exec(delete(Score).where(Score.run_id == run.id))
        s.add_all(scores)

    per_cell: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for score in scores:
        per_cell[score.cell_id][score.name].append(score.value)
    uri = tracking.tracking_uri(run.config.get("mlflow_url", ""))
    for cell in run_cells(run.id):
        if cell.mlflow_run_id and cell.id in per_cell:
            means = {name: sum(v) / len(v) for name, v in per_cell[cell.id].items()}
            tracking.log_metrics(uri, cell.mlflow_run_id, means)
    return len(scores)
