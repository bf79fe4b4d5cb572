from prefect import flow

from tasks.benchmark import evaluate_against_baseline, publish_leaderboard


@flow(name="compare", persist_result=True, flow_run_name="compare {run_id}")
def compare(
    run_id: str, baseline: str = "", tolerance: float = 0.0, allow_prompt_change: bool = False
) -> dict:
    """The leaderboard with confidence intervals; with a baseline, the regression verdict."""
    board = publish_leaderboard(run_id)
    if baseline:
        evaluate_against_baseline(run_id, baseline, tolerance, allow_prompt_change)
    return board
