"""`benchlib`: run a benchmark locally, list runs, show one, print its leaderboard.

Commands that do not run a flow (`runs`, `show`, `judge`, `leaderboard`, `report`, `compare`,
`--help`) never import Prefect or MLflow: the modules that do are imported inside the commands
that need them (tests/test_cli.py checks it), so those commands start in well under a second.
"""

import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import AliasChoices
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm, Prompt
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from benchlib import (
    autojudge,
    bounds,
    cache,
    db,
    events,
    files,
    integrity,
    judging,
    leaderboard,
    pairwise,
    reports,
    runs,
    scoring,
    tracking_outbox,
    verdict,
)
from benchlib.config import BenchmarkConfig, load_config
from benchlib.errors import BenchlibError
from benchlib.judge_session import judge_in_terminal, judge_pairs_in_terminal
from benchlib.pool import GPU_POOL, default_worker_name, worker_command, worker_env
from benchlib.records import RunStatus
from benchlib.settings import configure_prefect_servers, tracking_source, tracking_uri
from benchlib.suite import scenarios_file
from benchlib.yamldoc import read_yaml

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)


def _consoles() -> tuple[Console, Console]:
    """Piped output (CI logs) gets a wide console so tables are not cut to 80 columns, unless
    COLUMNS says how wide it is."""
    fixed = "COLUMNS" in os.environ
    return (
        Console(width=None if fixed or sys.stdout.isatty() else 240),
        Console(stderr=True, width=None if fixed or sys.stderr.isatty() else 240),
    )


console, err_console = _consoles()


def _option_for(name: str, field: Any) -> inspect.Parameter:
    """A CLI option for one config key; lists repeat (`--model a --model b`)."""
    flag = "--" + name.replace("_", "-")
    decls = [flag]
    if isinstance(field.validation_alias, AliasChoices):  # old names: `--n-tips`
        decls += [
            "--" + alias.replace("_", "-")
            for alias in field.validation_alias.choices
            if isinstance(alias, str) and alias != name
        ]
    annotation: Any = field.annotation
    if annotation in (list[str], dict[str, str]):
        decls.append(flag.removesuffix("s"))
        annotation = list[str]
    help_text = field.description or ""
    if field.annotation == dict[str, str]:
        help_text += " Give as ALIAS=PATH."
    parser = bounds.number_option(annotation) if annotation in (int, float) else None
    option = typer.Option(None, *decls, help=help_text, show_default=False, parser=parser)
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
    # Text, not markup: a message quoting `openai:m:` or `[bold]` is printed as written.
    err_console.print(Text.assemble(("error: ", "bold red"), message))
    sys.exit(2)


def _key_values(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchlibError(f"--local-model: expected ALIAS=PATH, got {item!r}")
        pairs[key] = value
    return pairs


def _output_path(value: Path | None) -> Path | None:
    """Every option naming a file to write: checked before the command does any work."""
    if value is not None:
        problem = files.output_problem(value)
        if problem:
            raise typer.BadParameter(f"{value}: {problem}")
    return value


def _print_table(title: str, header: list[str], body: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        text = name in ("model", "prompt")
        widest = max((len(row[i]) for row in body), default=0)
        table.add_column(
            name, justify="left" if text else "right", no_wrap=True, min_width=min(widest, 28)
        )
    for row in body:
        table.add_row(*row)
    console.print(table)


def print_leaderboard(run_id: str, board: leaderboard.Leaderboard, wide: bool = False) -> None:
    """The compact table (fits a terminal), or every column with `wide`; the steps of chains in
    a table of their own; then the notes that say how to read them."""
    title = f"Leaderboard · run {run_id} · ranked on {board.ranked_on} by {board.metric}"
    _print_table(title, *leaderboard.table_cells(board, wide=wide))
    header, body = leaderboard.step_cells(board)
    if header and not wide:
        _print_table(f"Steps · run {run_id} (* ranked)", header, body)
    for note in leaderboard.notes(board):
        console.print(f"  {note}", highlight=False, soft_wrap=False)


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
        overrides["local_models"] = _key_values(overrides["local_models"])
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

    from benchlib.orchestration import ensure_gpu_limit, in_process_flow
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
    if config.judge == "human":
        _offer_judging(run)


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    force: bool = typer.Option(False, "--force", help="Run it again even if it looks alive."),
) -> None:
    """Run again a benchmark whose process died: cells already done are not generated again."""
    from benchlib import recovery
    from benchlib.orchestration import ensure_gpu_limit, in_process_flow

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
            _judge_in_terminal(run, judge)
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
        _print_behind(behind, run.id)
    _print_set_aside(run.id)


def _push_to_mlflow(run_id: str) -> None:
    """Commands that publish (leaderboard, verdict) wait for MLflow like the end of a run."""
    run = runs.get_run(run_id)
    default = BenchmarkConfig.model_fields["mlflow_flush_s"].default
    behind = tracking_outbox.sync(run.id, run.config.get("mlflow_flush_s", default))
    if behind:
        _print_behind(behind, run.id)


def _print_behind(behind: int, run_id: str | None) -> None:
    """One wording wherever MLflow lags: how much, the error MLflow last gave, and the fix."""
    error = tracking_outbox.last_error(run_id) if run_id else None
    command = f"benchlib sync {run_id}" if run_id else "benchlib sync"
    console.print(
        f"[yellow]MLflow: {behind} items behind for {_scope(run_id)}[/]"
        + (f" (last error: {error[:200]})" if error else "")
        + f"; push them with `{command}`",
        highlight=False,
    )


def _scope(run_id: str | None) -> str:
    return f"run {run_id}" if run_id else "all runs"


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
    _print_set_aside(target)
    if behind:
        _print_behind(behind, target)
        raise typer.Exit(code=1)
    console.print(
        f"MLflow is up to date for {_scope(target)} but for set-aside items"
        if tracking_outbox.set_aside(target)
        else f"MLflow is up to date for {_scope(target)}"
    )


def _print_set_aside(run_id: str | None) -> None:
    """Set-aside items, one line per run and error (an unwritable artifact store refuses a
    run's every artifact with the same error: said once)."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for entry in tracking_outbox.set_aside(run_id):
        grouped.setdefault((entry.run_id, entry.error), []).append(entry.id)
    for (run, error), ids in grouped.items():
        console.print(
            f"[yellow]MLflow refused {len(ids)} item(s) of run {run}, set aside:[/] {error[:300]}",
            highlight=False,
        )
    if grouped:
        console.print("fix the cause, then `benchlib sync --retry-set-aside`", highlight=False)


@app.command("runs")
def list_runs(
    limit: int = typer.Option(
        20,
        help="How many runs, newest first.",
        parser=bounds.number_option(int, 1, bounds.MAX_LIST_LIMIT),
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts and agents)."),
) -> None:
    """List benchmark runs."""
    if not db.exists():  # a folder benchlib never ran in: nothing to list, nothing to create
        if as_json:
            print("[]")
        else:
            console.print("no runs yet")
        return
    listed = runs.list_runs(limit)
    behind = tracking_outbox.behind([r.id for r in listed])
    if as_json:
        fields = {"id", "suite", "experiment", "status", "n_cells", "created_at", "finished_at"}
        rows = [
            {**r.model_dump(mode="json", include=fields), "mlflow_behind": behind.get(r.id, 0)}
            for r in listed
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("run", "suite", "experiment", "status", "cells", "created", "models", "MLflow"):
        table.add_column(column)
    for r in listed:
        table.add_row(
            r.id,
            r.suite,
            r.experiment,
            r.status,
            str(r.n_cells),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            ", ".join(r.config.get("models", [])),
            f"{behind[r.id]} items behind" if r.id in behind else "up to date",
        )
    console.print(table)


@app.command()
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    candidates: bool = typer.Option(False, "--candidates", help="Print every candidate's output."),
    wide: bool = typer.Option(False, "--wide", help="Every leaderboard column."),
) -> None:
    """Show a run: its cells, their status, and (with --candidates) the outputs."""
    run = runs.get_run(run_id)
    cells = runs.run_cells(run.id)
    outputs: dict[str, list[Any]] = {}
    for candidate in runs.run_candidates(run.id):
        outputs.setdefault(candidate.cell_id, []).append(candidate)
    table = Table(title=f"run {run.id} · {run.suite} · {run.status}", title_justify="left")
    for column in ("#", "model", "prompt", "scenario", "status", "candidates", "worker", "error"):
        table.add_column(column)
    for cell in cells:
        table.add_row(
            str(cell.index),
            cell.model,
            cell.prompt_version,
            cell.scenario_id,
            cell.status,
            str(len(outputs.get(cell.id, []))),
            cell.worker or "",
            (cell.error or "")[:80],
        )
    console.print(table)
    if candidates:
        for cell in cells:
            console.rule(f"{cell.model} · {cell.prompt_version} · {cell.scenario_id}")
            for c in outputs.get(cell.id, []):
                console.print(f"[bold]#{c.index}[/] (seed {c.seed}) {c.text}", highlight=False)
    if run.leaderboard:
        print_leaderboard(run.id, leaderboard.Leaderboard.model_validate(run.leaderboard), wide)
    _print_where(run)


@app.command("leaderboard")
def show_leaderboard(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    json_file: Path | None = typer.Option(
        None, "--json", help="Also write it as JSON here.", callback=_output_path
    ),
    wide: bool = typer.Option(False, "--wide", help="Every column: steps, criteria, scores."),
) -> None:
    """Recompute (after new judgements, say) and print a run's leaderboard."""
    run = runs.get_run(run_id)
    scoring.score_run(run.id)
    board = reports.publish_leaderboard(run.id)
    print_leaderboard(run.id, board, wide)
    _print_pairwise(run)
    _push_to_mlflow(run.id)
    if json_file:
        files.write_atomic(json_file, board.model_dump_json(indent=2))
        console.print(f"leaderboard JSON: {json_file}")


@app.command()
def report(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    html: Path = typer.Option(
        ..., "--html", help="Write the HTML report (table and charts) here.", callback=_output_path
    ),
) -> None:
    """Write a run's self-contained HTML report: leaderboard table, heatmap, score intervals."""
    run = runs.get_run(run_id)
    files.write_atomic(html, reports.render_html(run, reports.current_leaderboard(run)))
    console.print(f"report: {html}")


@app.command()
def compare(
    run_id: str = typer.Argument(..., help="The run under test (id or unique prefix)."),
    baseline: str = typer.Option(..., "--baseline", help="Baseline run id, or `latest`."),
    eval_report: Path | None = typer.Option(
        None,
        "--eval-report",
        help="Write the machine-readable verdict (JSON) here.",
        callback=_output_path,
    ),
    tolerance: float = typer.Option(
        0.0,
        help="Accepted mean quality drop.",
        parser=bounds.number_option(float, 0, bounds.MAX_TOLERANCE),
    ),
    allow_prompt_change: bool = typer.Option(
        False, help="Pair cells whose prompt text changed (the prompt is the change tested)."
    ),
    allow_uncompared: bool = typer.Option(
        False,
        help="Accept the verdict although cells of the run have no comparable baseline cell "
        "(recorded in the report); without it they make the verdict not acceptable.",
    ),
    require_improvement: bool = typer.Option(
        False,
        help="Acceptable only if every pair improved and none broke (aggregate score > 0), "
        "instead of: no regression beyond the tolerance.",
    ),
) -> None:
    """Compare a run with a baseline. Exit 0 acceptable, 1 not acceptable, 2 bad input."""
    result = verdict.evaluate(
        runs.get_run(run_id).id,
        baseline,
        tolerance,
        allow_prompt_change,
        allow_uncompared,
        "improvement" if require_improvement else "no_regression",
    )
    if eval_report:
        files.write_atomic(eval_report, result.model_dump_json(indent=2))
    print_verdict(result)
    if eval_report:
        console.print(f"eval report: {eval_report}")
    raise typer.Exit(code=0 if result.is_acceptable else 1)


def _interval(low: float | None, high: float | None) -> str:
    return "n/a (one scenario)" if low is None else f"{_num(low)}, {_num(high)}"


def print_verdict(result: verdict.EvalReport) -> None:
    s = result.summary
    colour = "green" if result.is_acceptable else "red"
    word = "ACCEPTABLE" if result.is_acceptable else "NOT ACCEPTABLE"
    rule = "every pair improved" if result.rule == "improvement" else "no regression"
    console.print(
        f"[bold {colour}]{word}[/] ({rule}): run {result.run} vs baseline {result.baseline} · "
        f"aggregate score {_num(result.aggregate_score)} · mean quality delta "
        f"{_num(s.mean_quality_delta)} [{s.confidence:.0%} CI {_interval(s.ci_low, s.ci_high)}] "
        f"over {s.scenarios} scenarios · tolerance {result.tolerance:g}"
    )
    if not s.interval_reliable:
        console.print(
            f"[yellow]interval unreliable: {s.scenarios} scenario(s), fewer than "
            f"{s.min_scenarios} (below that its coverage was measured under 93%)[/]"
        )
    for reason in result.reasons:
        console.print(f"[red]not acceptable:[/] {reason}")
    if result.uncompared_allowed and s.uncompared:
        console.print(f"[yellow]{s.uncompared} cell(s) of the run accepted uncompared[/]")
    for nc in result.not_comparable[:5]:
        console.print(f"  not comparable: {nc.name}: {'; '.join(nc.reasons)}")
    if len(result.not_comparable) > 5:
        console.print(f"  … and {len(result.not_comparable) - 5} more (see --eval-report)")
    console.print(
        f"{s.improved} improved · {s.regressed} regressed · {s.broken} broken · "
        f"{s.unchanged} unchanged · {s.unknown} unknown · {s.not_comparable} not comparable"
    )
    if s.cached_outputs or s.baseline_cached_outputs:
        console.print(
            f"{s.cached_outputs} of {s.outputs} output(s) of the run and "
            f"{s.baseline_cached_outputs} of the baseline's came from the response cache: "
            "no latency compared for their pairs"
        )
    groups = Table(title="mean quality delta per (model, prompt)", title_justify="left")
    for column in ("model", "prompt", "scenarios", "quality Δ", f"{s.confidence:.0%} CI"):
        groups.add_column(column)
    for g in result.groups:
        mark = "" if g.reliable else " (unreliable)"
        groups.add_row(
            g.model,
            g.prompt,
            str(g.scenarios),
            _num(g.mean_quality_delta),
            _interval(g.ci_low, g.ci_high) + mark,
        )
    console.print(groups)
    table = Table(title="worst pairs", title_justify="left")
    for column in (
        "pair",
        "metric",
        "quality Δ",
        "score",
        "broken",
        "output changed",
        "latency Δ s",
    ):
        table.add_column(column)
    worst = {name: i for i, name in enumerate(s.worst)}
    for pair in sorted((p for p in result.pairs if p.name in worst), key=lambda p: worst[p.name]):
        table.add_row(
            pair.name,
            pair.metric or "—",
            _num(pair.quality_delta),
            _num(pair.score),
            ", ".join(pair.broken_checks) or "no",
            "yes" if pair.output_changed else "no",
            _num(pair.latency_delta),
        )
    console.print(table)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


class _JudgeGroup(TyperGroup):
    """`benchlib judge RUN` is the terminal session; `judge export|apply|resume` the rest."""

    def resolve_command(self, ctx: typer.Context, args: list[str]):  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["session", *args]
        return super().resolve_command(ctx, args)


judge_app = typer.Typer(
    cls=_JudgeGroup,
    help="Blind human judging: `benchlib judge RUN` in the terminal, or export/apply a file.",
    no_args_is_help=True,
)
app.add_typer(judge_app, name="judge")


def refresh(run_id: str) -> None:
    """Re-score and re-publish a finished run after new judgements; a suspended run is left to
    its flow, which scores once it is resumed."""
    board = reports.refresh_leaderboard(run_id)
    run = runs.get_run(run_id)
    if board is not None:
        print_leaderboard(run.id, board)
        _print_pairwise(run)
        _push_to_mlflow(run.id)
    elif run.status == RunStatus.awaiting_judge:
        console.print(f"the flow is waiting for judges: `benchlib judge resume {run.id}`")


@judge_app.command("session", hidden=True)
def judge_session(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    judge: str = typer.Option(..., "--judge", prompt="Your name or id", help="Who is judging."),
) -> None:
    """Judge in the terminal, one blind item at a time (resumable)."""
    run = runs.get_run(run_id)
    _judge_in_terminal(run, judge)
    refresh(run.id)


def _judge_in_terminal(run: Any, judge: str) -> None:
    if pairwise.is_pairwise(run):
        judge_pairs_in_terminal(run, judge, console)
    else:
        judge_in_terminal(run, judge, console)


def _print_pairwise(run: Any) -> None:
    """A pairwise run's Bradley–Terry table, after the rubric leaderboard."""
    if not pairwise.is_pairwise(run):
        return
    found = pairwise.board(run)
    thin = " · THIN: fewer than 5 judged scenarios" if found.thin else ""
    table = Table(
        title=f"Pairwise · {found.judgements} judgements over {found.scenarios} scenarios{thin}",
        caption=found.method,
        title_justify="left",
    )
    header, body = pairwise.table_cells(found)
    for title in header:
        table.add_column(title, justify="left" if title in ("model", "prompt") else "right")
    for row in body:
        table.add_row(*row)
    console.print(table)
    agreement = found.agreement
    if agreement.pairs_judged_twice:
        console.print(
            f"judges agree on {agreement.percent:.0%} of repeated pairs "
            f"({agreement.pairs_judged_twice} pairs; alpha {_num(agreement.alpha)})"
        )


@judge_app.command("export")
def judge_export(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    out: Path = typer.Option(
        ..., "--out", help="Where to write the judge file (JSON).", callback=_output_path
    ),
    judge: str = typer.Option("", help="Pre-fill the judge and leave out what they judged."),
    sample: str | None = typer.Option(
        None, "--sample", help="Spot check: a stratified sample of N items or a fraction (0.2)."
    ),
) -> None:
    """Write the rubric and the blind items (or pairs) to a file a person fills in."""
    run = runs.get_run(run_id)
    if pairwise.is_pairwise(run):
        judge_file = pairwise.export_file(run, judge)
    else:
        items = None
        if sample is not None:
            items = autojudge.stratified_sample(
                run, judging.judge_items(run), autojudge.parse_sample(sample)
            )
            if judge:
                items = judging.pending_items(run, judge, items)
        judge_file = judging.export_file(run, judge, items)
    files.write_atomic(out, judge_file.model_dump_json(indent=2))
    console.print(f"{len(judge_file.items)} item(s) to judge: {out}")
    console.print(f"fill in `judge` and the choices, then: benchlib judge apply {out}")


@judge_app.command("apply")
def judge_apply(
    file: Path = typer.Argument(..., help="A filled judge file.", exists=True, dir_okay=False),
    resume: bool = typer.Option(False, help="Then continue the suspended flow run (approve)."),
) -> None:
    """Validate the whole file, then record its judgements in one transaction (idempotent)."""
    run_id, counts = pairwise.apply_any_file(files.read_text(file, "judge file"), str(file))
    console.print(
        f"run {run_id}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged"
    )
    if resume:
        judge_resume(run_id, approve=True)
    else:
        refresh(run_id)


@judge_app.command("resume")
def judge_resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    approve: bool = typer.Option(True, help="Continue with what is judged (else wait again)."),
) -> None:
    """Continue a benchmark flow run that waits for judges."""
    from benchlib.orchestration import resume_run

    run = runs.get_run(run_id)
    flow_run_id = resume_run(run, approve)
    pending = pairwise.unjudged(run)
    console.print(f"resumed flow run {flow_run_id} ({pending} item(s) left unjudged)")


@judge_app.command("auto")
def judge_auto(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    model: str = typer.Option(..., "--model", help="Judge model spec, e.g. ollama:qwen2.5:3b."),
    sample: str | None = typer.Option(
        None, "--sample", help="Judge only a stratified sample: N items or a fraction (0.2)."
    ),
    allow_self_judge: bool = typer.Option(
        False, "--allow-self-judge", help="Let a model of the run judge the run's outputs."
    ),
    max_model_b: float | None = typer.Option(None, help="Size guard (default: the run's)."),
    allow_unknown_size: bool = typer.Option(
        False, "--allow-unknown-size", help="Judge with a model whose size the server hides."
    ),
    openai_base_url: str | None = typer.Option(None, help="Default: the run's."),
    ollama_url: str | None = typer.Option(None, help="Default: the run's."),
    max_tokens: int = typer.Option(autojudge.MAX_TOKENS, min=1, help="Judge answer token limit."),
    refresh_cache: bool = typer.Option(
        False, "--refresh", help="Ask the judge again and refresh its cached answers."
    ),
) -> None:
    """A judge model scores the run's blind items with its rubric (cached, in the call log);
    its judgements are recorded under `model:SPEC…`, apart from people's."""
    overrides = {
        "max_model_b": max_model_b,
        "allow_unknown_size": allow_unknown_size or None,
        "openai_base_url": openai_base_url,
        "ollama_url": ollama_url,
        "refresh": refresh_cache or None,
    }
    size = autojudge.parse_sample(sample) if sample is not None else None
    result = autojudge.judge_run(
        run_id, model, overrides, size, allow_self_judge, max_tokens=max_tokens
    )
    console.print(
        f"run {result.run_id}: {result.items} item(s) judged by {result.judge}: "
        f"{result.added} added, {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.failed} malformed answer(s); {result.provider_calls} provider call(s)"
    )
    refresh(result.run_id)


@judge_app.command("agreement")
def judge_agreement(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts and agents)."),
) -> None:
    """How far to trust each model judge: its agreement with people on the items both judged
    (Krippendorff's alpha per criterion) and its bias (model − people, with an interval)."""
    result = autojudge.calibration(runs.get_run(run_id).id)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    if not result.judges:
        console.print(f"run {result.run_id}: no model judge yet (`benchlib judge auto`)")
    for entry in result.judges:
        table = Table(
            title=f"{entry.model_judge} vs people ({', '.join(entry.people) or 'none'}) · "
            f"{entry.items} item(s) both judged · {result.confidence:.0%} CI over scenarios",
            title_justify="left",
        )
        for title in ("criterion", "items", "scenarios", "alpha", "bias", "bias CI", ""):
            table.add_column(title, justify="left" if title == "criterion" else "right")
        for c in entry.criteria:
            interval = "—" if c.bias_low is None else f"[{c.bias_low:+.2f}, {c.bias_high:+.2f}]"
            table.add_row(
                c.criterion,
                str(c.items),
                str(c.scenarios),
                "—" if c.alpha is None else f"{c.alpha:.2f}",
                "—" if c.bias is None else f"{c.bias:+.2f}",
                interval,
                "thin evidence" if c.thin else "",
            )
        console.print(table)


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


LOOPBACK = ("127.0.0.1", "localhost", "::1")
PORT = bounds.number_option(int, bounds.MIN_PORT, bounds.MAX_PORT)


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
    from benchlib import stack

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
    from benchlib import stack

    stopped = stack.down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Which stack processes run (pid) and where their logs are."""
    from benchlib import stack

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


def main() -> None:
    """The console script: user errors print one clear message and exit 2, no traceback."""
    try:
        app(prog_name="benchlib")
    except BenchlibError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
