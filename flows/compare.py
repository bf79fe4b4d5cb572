from prefect import flow

from tasks.benchmark import publish_leaderboard


@flow(name="compare", persist_result=True)
def compare(run_id: str) -> list[dict]:
    """The leaderboard by (model, prompt), published to the DB, MLflow and the flow run."""
    return publish_leaderboard(run_id)
