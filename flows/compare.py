from typing import Literal

from prefect import flow

from benchlib.evaluation.leaderboard import Leaderboard
from tasks.benchmark import evaluate_against_baseline, publish_leaderboard


@flow(name="compare", persist_result=True, flow_run_name="compare {run_id}")
def compare(
    run_id: str,
    baseline: str = "",
    tolerance: float = 0.0,
    allow_prompt_change: bool = False,
    allow_uncompared: bool = False,
    require_improvement: bool = False,
) -> Leaderboard:
    """The leaderboard with confidence intervals; with a baseline, the regression verdict."""
    board = publish_leaderboard(run_id)
    if baseline:
        rule: Literal["no_regression", "improvement"] = (
            "improvement" if require_improvement else "no_regression"
        )
        evaluate_against_baseline(
            run_id, baseline, tolerance, allow_prompt_change, allow_uncompared, rule
        )
    return board
