"""The benchmark's tasks. Results are persisted so a resumed flow run does not redo them."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from benchlib import (
    collect,
    fanout,
    judging,
    leaderboard,
    providers,
    reports,
    runs,
    scoring,
    tracking_outbox,
    verdict,
)
from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.grid import CellPlan, model_blocks
from benchlib.modelspec import ModelSpec
from benchlib.records import RunStatus
from benchlib.runs import RunContext, RunPlan


@task(persist_result=True)
def plan(config: BenchmarkConfig) -> RunPlan:
    return runs.plan_run(config, flow_run_id=flow_run.get_id())


@task(cache_policy=NO_CACHE)
def mark_run(run_id: str, status: RunStatus, error: str | None = None) -> None:
    """Not cached: a resumed flow run must show `running` again, not a stale `failed`."""
    runs.set_status(run_id, status, error)


@task(
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="{cell.model} | {cell.prompt_version} | {cell.scenario_id}",
)
def run_cell(context: RunContext, cell: CellPlan) -> collect.CellOutcome:
    """Runs while the flow holds the `gpu` slot for this cell's model block. Neither cached nor
    persisted by Prefect: the database says what is done (a replayed block skips recorded
    cells; a cell committed just before a crash is returned as recorded), so hashing every
    cell's inputs and writing a result file per cell bought nothing."""
    return collect.run_cell(context, cell)


@task(
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="from the cache | {cells[0].model}",
)
def record_cached(context: RunContext, cells: list[CellPlan]) -> list[CellPlan]:
    """A block's cells the response cache answers whole, recorded in one task; returns the rest.
    Neither cached nor persisted, as run_cell."""
    return collect.record_cached(context, cells)


@task(persist_result=True)
def fan_out(context: RunContext, cells: list[CellPlan]) -> dict[str, list[str]]:
    """Persisted: a parent resumed after judging finds the pool's work done, not redone."""
    return fanout.run_blocks(context, model_blocks(cells))


@task(persist_result=True)
def apply_inline_scores(run_id: str, judge: str, scores: dict[str, dict[str, int]]) -> str | None:
    """Scores typed into the Prefect form; returns the problem instead of failing the run."""
    scored = [judging.Scored(item_id=item, scores=values) for item, values in scores.items()]
    try:
        judging.apply_judgements(run_id, judge, scored, source="Prefect form")
    except BenchlibError as exc:
        return str(exc)
    return None


@task(cache_policy=NO_CACHE)
def release_model(context: RunContext, model: str) -> None:
    """Free a model once its block of cells is done: Ollama gets keep_alive=0, the local
    llama.cpp server stops. Reached through the `providers` module: a worker pickles this
    function by value, and the server pool (it holds a lock) cannot be pickled. Not cached:
    a block run again loads its model again, and hashing the run's context cost ~0.3 s."""
    providers.provider_for(ModelSpec.parse(model), context.config).unload()


@task(cache_policy=NO_CACHE)
def push_to_mlflow(run_id: str, timeout_s: float) -> int:
    """Wait up to `timeout_s` for MLflow to take the run's backlog; returns what is left (the
    run does not fail for it: `benchlib sync` pushes the rest). Not cached: a resumed flow run
    has new entries to push."""
    behind = tracking_outbox.sync(run_id, timeout_s)
    if behind:
        get_run_logger().warning(
            f"MLflow is {behind} item(s) behind for run {run_id}: `benchlib sync {run_id}`"
        )
    return behind


@task(persist_result=True)
def score(run_id: str) -> int:
    return scoring.score_run(run_id)


@task(persist_result=True)
def evaluate_against_baseline(
    run_id: str,
    baseline: str,
    tolerance: float,
    allow_prompt_change: bool,
    allow_uncompared: bool,
    rule: verdict.Rule,
) -> dict | None:
    """The eval report, or None (with the reason in the log) when no baseline is usable."""
    try:
        report = verdict.evaluate(
            run_id, baseline, tolerance, allow_prompt_change, allow_uncompared, rule
        )
    except BenchlibError as exc:
        get_run_logger().warning(f"no verdict: {exc}")
        return None
    reports.publish_verdict(report)
    create_markdown_artifact(
        key="eval-report",
        markdown=reports.verdict_markdown(report),
        description=f"Run {run_id} against baseline {report.baseline}",
    )
    return report.model_dump(mode="json")


@task(persist_result=True)
def publish_leaderboard(run_id: str) -> leaderboard.Leaderboard:
    board = reports.publish_leaderboard(run_id)
    create_table_artifact(
        key="leaderboard",
        table=[leaderboard.flat_row(row) for row in board.rows],
        description=f"Leaderboard of benchmark run {run_id}",
    )
    create_markdown_artifact(
        key="leaderboard-summary",
        markdown=leaderboard.markdown(run_id, board),
        description=f"Benchmark run {run_id}",
    )
    return board
