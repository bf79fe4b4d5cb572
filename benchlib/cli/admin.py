"""Services and upkeep: the admin API, the local stack, a GPU worker, the cache, suite hashes."""

import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from benchlib import bounds, files
from benchlib.cli.app import app
from benchlib.cli.common import LOOPBACK, PORT, console
from benchlib.errors import BenchlibError
from benchlib.generation import cache
from benchlib.pipeline.pool import GPU_POOL, default_worker_name, worker_command, worker_env
from benchlib.spec import integrity
from benchlib.spec.suite import scenarios_file
from benchlib.spec.yamldoc import read_yaml

cache_app = typer.Typer(help="The response cache (in the benchlib database).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("stats")
def cache_stats() -> None:
    """Cached answers per model."""
    rows = cache.stats()
    for model, count in rows:
        console.print(f"{model}: {count} cached answer(s)")
    if not rows:
        console.print("the cache is empty")


@cache_app.command("clear")
def cache_clear(model: str = typer.Option("", help="Only this model spec.")) -> None:
    """Remove cached answers (all, or one model's)."""
    console.print(f"removed {cache.clear(model or None)} cached answer(s)")


suite_app = typer.Typer(help="Suite files: scenario integrity hashes.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")


@suite_app.command("hash")
def suite_hash(
    suite: Path = typer.Argument(..., help="Suite folder, e.g. prompts/tips."),
    write: bool = typer.Option(
        False, "--write", help="Write every scenario's sha256 into the scenarios file."
    ),
) -> None:
    """Print each scenario's integrity hash and whether the file's `sha256:` matches; --write
    records them (after a deliberate edit), keeping the file's comments and layout."""
    doc = read_yaml(scenarios_file(suite))
    entries = integrity.hashed_entries(doc)
    table = Table(title=str(doc.path), title_justify="left")
    for column in ("line", "entry", "sha256", "status"):
        table.add_column(column)
    for entry in entries:
        table.add_row(str(doc.line(entry.loc)), entry.label, entry.actual, entry.status)
    console.print(table)
    changed = sum(entry.status != "ok" for entry in entries)
    if write and changed:
        files.write_atomic(doc.path, integrity.filled_text(doc))
        console.print(f"{doc.path}: wrote {changed} hash(es)")


@app.command("api")
def serve_api(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8765, envvar="BENCHLIB_API_PORT", parser=PORT),
    demo: bool = typer.Option(False, help="A local demo: no token needed (loopback only)."),
) -> None:
    """Serve the admin API and the judge and leaderboard pages. Needs BENCHLIB_API_TOKEN (and
    PREFECT_API_URL to trigger runs)."""
    import uvicorn

    from benchlib.api.app import create_app
    from benchlib.api.settings import ApiSettings

    settings = ApiSettings.from_env(demo, host)
    if not settings.token and host not in LOOPBACK:
        raise BenchlibError(f"--demo without a token serves on loopback only, not on {host}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


stack_app = typer.Typer(help="The local stack: Prefect server + worker + deployment, MLflow.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up(
    prefect_port: int = typer.Option(4200, envvar="BENCHLIB_PREFECT_PORT", parser=PORT),
    mlflow_port: int = typer.Option(5000, envvar="BENCHLIB_MLFLOW_PORT", parser=PORT),
    api_port: int = typer.Option(8765, envvar="BENCHLIB_API_PORT", parser=PORT),
) -> None:
    """Start the stack on 127.0.0.1 and register the `benchmark/default` deployment."""
    from benchlib.pipeline import stack

    config = stack.StackConfig(
        prefect_port=prefect_port, mlflow_port=mlflow_port, api_port=api_port
    )
    with console.status("starting Prefect server, MLflow server, worker; deploying"):
        found = stack.up(config)
    for name, url in found.items():
        console.print(f"{name}: {url}")
    console.print(
        f"run: PREFECT_API_URL={found['PREFECT_API_URL']} prefect deployment run "
        "benchmark/default --param n_scenarios=2"
    )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the stack (worker first)."""
    from benchlib.pipeline import stack

    stopped = stack.down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Which stack processes run (pid) and where their logs are."""
    from benchlib.pipeline import stack

    for name, pid in stack.status().items():
        console.print(f"{name}: {'running, pid ' + str(pid) if pid else 'stopped'}")
    console.print(f"logs: {stack.stack_dir()}")


@app.command()
def worker(
    slots: int = typer.Option(
        1,
        help="GPU slots of this host: models it runs at once.",
        parser=bounds.number_option(int, 1, bounds.MAX_SLOTS),
    ),
    name: str = typer.Option("", help="Worker name, recorded on cells (default gpu-<hostname>)."),
    pool: str = typer.Option(GPU_POOL, help="Work pool to serve."),
) -> None:
    """Serve the GPU work pool from this host (`execution: pool`); becomes a Prefect worker."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise BenchlibError(
            "benchlib worker: PREFECT_API_URL is not set: point it at the Prefect server every "
            "host shares, e.g. http://prefect-host:4200/api"
        )
    name = name or default_worker_name()
    command = worker_command(slots, name, pool)
    console.print(f"worker {name}: {slots} slot(s) on pool {pool}")
    sys.stdout.flush()
    os.execve(command[0], command, worker_env(slots, name))
