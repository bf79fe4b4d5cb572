from prefect import flow

from tasks.benchmark import score


@flow(name="scoring", persist_result=True, flow_run_name="scoring {run_id}")
def scoring(run_id: str) -> int:
    """Objective scores for every candidate of the run (re-running replaces them)."""
    return score(run_id)
