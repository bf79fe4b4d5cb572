"""`benchlib`: run a benchmark locally, list runs, show one, print its leaderboard."""

import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchlib import events, leaderboard, runs
from benchlib.config import BenchmarkConfig, load_config
from benchlib.errors import BenchlibError

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
# Piped output (CI logs) gets a wide console so tables are not cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _option_for(name: str, field: Any) -> inspect.Parameter:
    """A CLI option for one config key; lists repeat (`--model a --model b`)."""
    flag = "--" + name.replace("_", "-")
    decls = [flag]
    annotation: Any = field.annotation
    if annotation in (list[str], dict[str, str]):
        decls.append(flag.removesuffix("s"))
        annotation = list[str]
    help_text = field.description or ""
    if field.annotation == dict[str, str]:
        help_text += " Give as ALIAS=PATH."
    option = typer.Option(None, *decls, help=help_text, show_default=False)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation | None
    )


def with_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command` one option per BenchmarkConfig key (but `suite`, its argument), so the
    CLI, YAML files and flow parameters never drift apart."""
    own = [p for p in inspect.signature(command).parameters.values() if p.kind != p.VAR_KEYWORD]
    extra = [
        _option_for(name, field)
        for name, field in BenchmarkConfig.model_fields.items()
        if name != "suite"
    ]
    command.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in own + extra}
    return command


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(2)


def _key_values(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchlibError(f"--local-model: expected ALIAS=PATH, got {item!r}")
        pairs[key] = value
    return pairs


def print_leaderboard(run_id: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"Leaderboard · run {run_id}", title_justify="left")
    header, body = leaderboard.table_cells(rows)
    for title in header:
        table.add_column(title, justify="left" if title in ("model", "prompt") else "right")
    for row in body:
        table.add_row(*row)
    console.print(table)


@app.command()
@with_config_options
def run(
    suite: str = typer.Argument("prompts/tips", help="Suite folder, e.g. prompts/tips."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs."),
    **overrides: Any,
) -> None:
    """Run a benchmark on this machine: plan, generate every cell, score, print the leaderboard."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if overrides.get("local_models") is not None:
        overrides["local_models"] = _key_values(overrides["local_models"])
    config = load_config(config_file, suite=suite, **overrides)
    runs.check_run(config, run_id="check")

    from benchlib.orchestration import ensure_gpu_limit
    from flows.benchmark import benchmark

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
            result = benchmark(**config.model_dump())
        finally:
            unsubscribe()
    print_leaderboard(result["run_id"], result["leaderboard"])
    _print_where(runs.get_run(result["run_id"]))


def _print_where(run: Any) -> None:
    from benchlib.tracking import tracking_uri

    uri = tracking_uri(run.config.get("mlflow_url", ""))
    console.print(f"run id: [bold]{run.id}[/]  status: {run.status}  cells: {run.n_cells}")
    console.print(f"details: benchlib show {run.id}")
    if uri.startswith("sqlite"):
        console.print(
            f"MLflow: experiment {run.experiment!r}, parent run {run.mlflow_run_id}; browse with "
            f"`mlflow ui --backend-store-uri {uri}`"
        )
    else:
        console.print(f"MLflow: {uri} experiment {run.experiment!r}, run {run.mlflow_run_id}")


@app.command("runs")
def list_runs(limit: int = typer.Option(20, help="How many runs, newest first.")) -> None:
    """List benchmark runs."""
    table = Table()
    for column in ("run", "suite", "experiment", "status", "cells", "created", "models"):
        table.add_column(column)
    for r in runs.list_runs(limit):
        table.add_row(
            r.id,
            r.suite,
            r.experiment,
            r.status,
            str(r.n_cells),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            ", ".join(r.config.get("models", [])),
        )
    console.print(table)


@app.command()
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    candidates: bool = typer.Option(False, "--candidates", help="Print every candidate's output."),
) -> None:
    """Show a run: its cells, their status, and (with --candidates) the outputs."""
    run = runs.get_run(run_id)
    cells = runs.run_cells(run.id)
    outputs: dict[str, list[Any]] = {}
    for candidate in runs.run_candidates(run.id):
        outputs.setdefault(candidate.cell_id, []).append(candidate)
    table = Table(title=f"run {run.id} · {run.suite} · {run.status}", title_justify="left")
    for column in ("#", "model", "prompt", "scenario", "status", "candidates", "error"):
        table.add_column(column)
    for cell in cells:
        table.add_row(
            str(cell.index),
            cell.model,
            cell.prompt_version,
            cell.scenario_id,
            cell.status,
            str(len(outputs.get(cell.id, []))),
            (cell.error or "")[:80],
        )
    console.print(table)
    if candidates:
        for cell in cells:
            console.rule(f"{cell.model} · {cell.prompt_version} · {cell.scenario_id}")
            for c in outputs.get(cell.id, []):
                console.print(f"[bold]#{c.index}[/] (seed {c.seed}) {c.text}", highlight=False)
    if run.leaderboard:
        print_leaderboard(run.id, run.leaderboard)
    _print_where(run)


@app.command("leaderboard")
def show_leaderboard(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
) -> None:
    """Recompute and print a run's leaderboard."""
    run = runs.get_run(run_id)
    print_leaderboard(run.id, leaderboard.publish_leaderboard(run.id))


def main() -> None:
    """The console script: user errors print one clear message and exit 2, no traceback."""
    try:
        app(prog_name="benchlib")
    except BenchlibError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
