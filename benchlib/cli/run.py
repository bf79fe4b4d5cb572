"""Running benchmarks: `run`, `resume`, `sync`."""

import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm, Prompt

from benchlib import bounds
from benchlib.cli.app import app
from benchlib.cli.common import (
    console,
    judge_run_in_terminal,
    key_values,
    print_behind,
    print_leaderboard,
    print_set_aside,
    scope,
    with_config_options,
)
from benchlib.cli.judge import refresh
from benchlib.config import load_config
from benchlib.evaluation import judging, pairwise
from benchlib.pipeline import events
from benchlib.settings import configure_prefect_servers, tracking_source, tracking_uri
from benchlib.store import db, runs
from benchlib.tracking import outbox as tracking_outbox


@app.command()
@with_config_options
def run(
    suite: str = typer.Argument("prompts/tips", help="Suite folder, e.g. prompts/tips."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs."),
    **overrides: Any,
) -> None:
    """Run a benchmark on this machine: plan, generate every cell, score, print the leaderboard."""
    configure_prefect_servers()
    if overrides.get("local_models") is not None:
        overrides["local_models"] = key_values(overrides["local_models"])
    config = load_config(config_file, suite=suite, **overrides)
    runs.check_run(config, run_id="check")
    # Before a flow run exists: the database opens (a damaged one is said here), and an id
    # given by the user is taken, so that a second run started with it at once is refused.
    db.engine()
    if config.run_id:
        runs.claim_run_id(config.run_id)
    console.print(
        f"MLflow: {tracking_uri(config.mlflow_url)} (from {tracking_source(config.mlflow_url)})",
        highlight=False,
    )

    from benchlib.pipeline.orchestration import ensure_gpu_limit, in_process_flow
    from flows.benchmark import benchmark

    if not verbose:
        _quiet_console()

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
    ) as progress:
        bar = progress.add_task("starting Prefect", total=None, last="")

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "planned":
                progress.update(bar, description=f"run {data['run_id']}", total=data["cells"])
            elif kind == "cell_done":
                cell = data["cell"]
                mark = "[red]failed[/]" if data["error"] else "ok"
                last = f"{cell.model} · {cell.prompt_version} · {cell.scenario_id} {mark}"
                progress.update(bar, advance=1, last=last)

        unsubscribe = events.subscribe(on_event)
        try:
            ensure_gpu_limit()
            with in_process_flow():
                result = benchmark(**config.model_dump())
        finally:
            unsubscribe()
            if config.run_id:
                runs.release_run_id(config.run_id)
    print_leaderboard(result["run_id"], result["leaderboard"])
    run = runs.get_run(result["run_id"])
    _print_where(run)
    cached = sum(c.cached for c in runs.run_candidates(run.id))
    if cached:
        console.print(f"{cached} output(s) came from the response cache (--refresh to regenerate)")
    if config.judge in judging.WAITS_FOR_PEOPLE:
        _offer_judging(run)


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    force: bool = typer.Option(False, "--force", help="Run it again even if it looks alive."),
) -> None:
    """Run again a benchmark whose process died: cells already done are not generated again."""
    from benchlib.pipeline import recovery
    from benchlib.pipeline.orchestration import ensure_gpu_limit, in_process_flow

    flow_run = recovery.reschedule(run_id, force)
    if flow_run.deployment_id:
        console.print(
            f"flow run {flow_run.id} is scheduled again: a worker of pool "
            f"{flow_run.work_pool_name!r} picks it up"
        )
        return
    _quiet_console()
    from prefect.flow_engine import run_flow_sync

    from flows.benchmark import benchmark

    ensure_gpu_limit()
    console.print(f"running flow run {flow_run.id} again (waits for the gpu slot to be free)")
    with in_process_flow():
        result = run_flow_sync(benchmark, flow_run=flow_run, parameters=flow_run.parameters)
    assert isinstance(result, dict)  # return_type="result": the flow's return value or a raise
    print_leaderboard(result["run_id"], result["leaderboard"])
    _print_where(runs.get_run(result["run_id"]))


def _quiet_console() -> None:
    """Only warnings and errors on the terminal, where the progress bar and the leaderboard
    are; the Prefect UI still gets every log line. Prefect sets up its logging when it is
    imported (the commands call this after importing it), so its console handler is turned down
    here; MLflow sets up its own when the pusher imports it and reads its level from the
    environment."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _offer_judging(run: Any) -> None:
    """No deployment to suspend here: judge inline when a person is at the terminal, else say
    how to add judgements later."""
    pending = pairwise.unjudged(run)
    if not pending:
        return
    unit = "pairs" if pairwise.is_pairwise(run) else "outputs"
    if sys.stdin.isatty() and sys.stdout.isatty():
        if Confirm.ask(f"{pending} {unit} await human judgement. Judge them now?"):
            judge = Prompt.ask("Your name or id")
            judge_run_in_terminal(run, judge)
            refresh(run.id)
        return
    console.print(
        f"{pending} {unit} await human judgement (the leaderboard shows objective scores "
        f"until then): `benchlib judge {run.id}` or `benchlib judge export {run.id} --out "
        "judge.json` + `benchlib judge apply judge.json`; the leaderboard then refreshes."
    )


def _print_where(run: Any) -> None:
    uri = tracking_uri(run.config.get("mlflow_url", ""))
    loads, load_s = runs.model_loads(run.id)
    console.print(
        f"run id: [bold]{run.id}[/]  status: {run.status}  cells: {run.n_cells}  "
        f"model loads: {loads} ({load_s:.1f} s)"
    )
    console.print(f"details: benchlib show {run.id}")
    if uri.startswith("sqlite"):
        console.print(
            f"MLflow: experiment {run.experiment!r}, run {run.mlflow_run_id}; browse with "
            f"`mlflow ui --backend-store-uri {uri}`"
        )
    else:
        console.print(f"MLflow: {uri} experiment {run.experiment!r}, run {run.mlflow_run_id}")
    behind = tracking_outbox.behind([run.id]).get(run.id, 0)
    if behind:
        print_behind(behind, run.id)
    print_set_aside(run.id)


@app.command()
def sync(
    run_id: str | None = typer.Argument(None, help="Run id (or a unique prefix); default: all."),
    timeout: float = typer.Option(
        300.0,
        "--timeout",
        help="Give up after this many seconds.",
        parser=bounds.number_option(float, 0, bounds.MAX_WAIT_S),
    ),
    retry_set_aside: bool = typer.Option(
        False, "--retry-set-aside", help="Push again the items MLflow refused (store fixed)."
    ),
) -> None:
    """Push what MLflow has yet to receive (it was down, or a run ended before it caught up).
    Items MLflow refused for good are set aside, listed here, and pushed again only with
    --retry-set-aside. Exit 0 when nothing is left but set-aside items, 1 when items are
    still behind."""
    target = runs.get_run(run_id).id if run_id else None
    if retry_set_aside:
        console.print(f"{tracking_outbox.retry_set_aside(target)} set-aside item(s) back in line")
    behind = tracking_outbox.sync(target, timeout)
    print_set_aside(target)
    if behind:
        print_behind(behind, target)
        raise typer.Exit(code=1)
    console.print(
        f"MLflow is up to date for {scope(target)} but for set-aside items"
        if tracking_outbox.set_aside(target)
        else f"MLflow is up to date for {scope(target)}"
    )
