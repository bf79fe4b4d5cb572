"""The benchmark's tasks. Results are persisted so a resumed flow run does not redo them."""

from collections.abc import Mapping
from uuid import UUID

from prefect import get_client, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.evaluation import autojudge, judging, leaderboard, pairwise, reports, scoring, verdict
from benchlib.generation import collect, providers
from benchlib.generation.modelspec import ModelSpec
from benchlib.pipeline import fanout, orchestration, prefect_views
from benchlib.settings import mlflow_ui_url
from benchlib.spec.grid import CellPlan, model_blocks
from benchlib.store import runs
from benchlib.store.records import RunStatus
from benchlib.store.runs import RunContext, RunPlan
from benchlib.tracking import outbox as tracking_outbox


@task(persist_result=True, task_run_name="plan the run")
def plan(config: BenchmarkConfig) -> RunPlan:
    return runs.plan_run(config, flow_run_id=flow_run.get_id())


@task(cache_policy=NO_CACHE, task_run_name="name the flow run {run_id}")
def label_flow_run(run_id: str) -> None:
    """Name the flow run after the benchmark run and tag it, so a search in the Prefect UI for a
    run id, a suite, an experiment or a model finds it (the id is known only once planned)."""
    run = runs.get_run(run_id)
    models = run.config.get("models", [])
    wanted = [f"suite:{run.suite}", f"experiment:{run.experiment}", *(f"model:{m}" for m in models)]
    with get_client(sync_client=True) as client:
        found = client.read_flow_run(UUID(orchestration.current_flow_run_id()))
        tags = list(dict.fromkeys([*found.tags, orchestration.run_tag(run_id), *wanted]))
        client.update_flow_run(found.id, name=run_id, tags=tags)


@task(cache_policy=NO_CACHE, task_run_name="mark the run {status}")
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


@task(persist_result=True, task_run_name="the model judge | {judge_model}")
def judge_with_model(
    run_id: str, judge_model: str, no_cache: bool, refresh: bool
) -> autojudge.AutoJudgeResult:
    """The judge model scores the run's blind items under a `gpu` slot, taken after every
    block released its model: never two models loaded at once. Persisted: a flow run resumed
    after judging does not judge again."""
    with orchestration.gpu_slot(orchestration.current_flow_run_id()):
        return autojudge.judge_run(
            run_id, judge_model, overrides={"no_cache": no_cache, "refresh": refresh}
        )


@task(persist_result=True, task_run_name="hand the model blocks to the pool")
def fan_out(context: RunContext, cells: list[CellPlan]) -> dict[str, list[str]]:
    """Persisted: a parent resumed after judging finds the pool's work done, not redone."""
    return fanout.run_blocks(context, model_blocks(cells))


@task(persist_result=True, task_run_name="record the form's judgements (round {round_})")
def apply_inline_scores(
    run_id: str,
    round_: int,
    judge: str,
    scores: Mapping[str, Mapping[str, float]],
    choices: Mapping[str, str],
) -> str | None:
    """Scores (or pairwise choices) typed into the Prefect form; returns the problem instead of
    failing the run. Persisted: a replay after a later resume neither applies nor reports them
    again."""
    try:
        if choices:
            chosen = [pairwise.Chosen(pair_id=p, choice=c) for p, c in choices.items()]
            pairwise.apply_choices(run_id, judge, chosen, source="Prefect form")
        if scores:
            scored = [judging.Scored(item_id=i, scores=v) for i, v in scores.items()]
            judging.apply_judgements(run_id, judge, scored, source="Prefect form")
    except BenchlibError as exc:
        get_run_logger().warning(f"inline judgements rejected: {exc}")
        return str(exc)
    return None


@task(persist_result=True, task_run_name="wait for judges (round {round_})")
def announce_judging(run_id: str, round_: int) -> None:
    """Says where to judge. Persisted: a replay after resume does not log earlier rounds again."""
    left = pairwise.unjudged(runs.get_run(run_id))
    get_run_logger().info(
        f"waiting for judges: {prefect_views.judge_page_url(run_id)} ({left} unjudged)"
    )


@task(cache_policy=NO_CACHE, task_run_name="unload the model")
def release_model(context: RunContext, model: str) -> None:
    """Free a model once its block of cells is done: Ollama gets keep_alive=0, the local
    llama.cpp server stops. Reached through the `providers` module: a worker pickles this
    function by value, and the server pool (it holds a lock) cannot be pickled. Not cached:
    a block run again loads its model again, and hashing the run's context cost ~0.3 s."""
    providers.provider_for(ModelSpec.parse(model), context.config).unload()


@task(cache_policy=NO_CACHE, task_run_name="push to MLflow")
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


@task(persist_result=True, task_run_name="score the outputs")
def score(run_id: str) -> int:
    return scoring.score_run(run_id)


@task(persist_result=True, task_run_name="compare with baseline {baseline}")
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


@task(persist_result=True, task_run_name="publish the leaderboard")
def publish_leaderboard(run_id: str) -> leaderboard.Leaderboard:
    board = reports.publish_leaderboard(run_id)
    _leaderboard_artifacts(run_id, board)
    return board


def _leaderboard_artifacts(run_id: str, board: leaderboard.Leaderboard) -> None:
    n_candidates = runs.get_run(run_id).config.get("n_candidates", 0)
    create_table_artifact(
        key="leaderboard",
        table=prefect_views.artifact_rows(board, n_candidates),
        description=f"Leaderboard of benchmark run {run_id}",
    )
    create_markdown_artifact(
        key="leaderboard-summary",
        markdown=leaderboard.markdown(run_id, board),
        description=f"Benchmark run {run_id}",
    )


@task(cache_policy=NO_CACHE, task_run_name="link the results")
def publish_run_summary(run_id: str, board: leaderboard.Leaderboard) -> None:
    """The parent flow run's artifacts: the leaderboard again (the compare subflow has its
    own), the run's links, and link artifacts to the HTML report and the MLflow run."""
    run = runs.get_run(run_id)
    _leaderboard_artifacts(run_id, board)
    create_markdown_artifact(
        key="benchmark-links",
        markdown=prefect_views.links_markdown(run, mlflow_ui_url()),
        description=f"Where benchmark run {run_id}'s results are",
    )
    create_link_artifact(
        key="html-report",
        link=prefect_views.report_url(run_id),
        link_text=f"HTML report of {run_id}",
    )
    mlflow = prefect_views.mlflow_run_url(run, mlflow_ui_url())
    if mlflow:
        create_link_artifact(key="mlflow-run", link=mlflow, link_text=f"MLflow run of {run_id}")
