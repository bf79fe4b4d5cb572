"""`benchlib`: run a benchmark locally, list runs, show one, print its leaderboard."""

import atexit
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm, Prompt
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from benchlib import (
    cache,
    events,
    integrity,
    judging,
    leaderboard,
    pairwise,
    recovery,
    reports,
    runs,
    scoring,
    stack,
    tracking_outbox,
    verdict,
)
from benchlib.config import BenchmarkConfig, load_config
from benchlib.errors import BenchlibError
from benchlib.judge_session import judge_in_terminal, judge_pairs_in_terminal
from benchlib.orchestration import ensure_gpu_limit, in_process_flow, resume_run
from benchlib.pool import GPU_POOL, default_worker_name, worker_command, worker_env
from benchlib.records import RunStatus
from benchlib.settings import configure_prefect_servers, tracking_uri
from benchlib.suite import scenarios_file
from benchlib.yamldoc import read_yaml

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)


def _consoles() -> tuple[Console, Console]:
    """Piped output (CI logs) gets a wide console so tables are not cut to 80 columns."""
    return (
        Console(width=None if sys.stdout.isatty() else 240),
        Console(stderr=True, width=None if sys.stderr.isatty() else 240),
    )


console, err_console = _consoles()


def attach_streams() -> None:
    """Make the consoles again for this process's stdout, stderr and environment: the fork
    server imported this module before it had a caller's."""
    global console, err_console
    console, err_console = _consoles()


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
    parser = _number_parser(annotation) if annotation in (int, float) else None
    option = typer.Option(None, *decls, help=help_text, show_default=False, parser=parser)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation | None
    )


def _number_parser(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """Typer's own conversion error does not quote the value it refused; this one does."""
    expected = "a whole number" if kind is int else "a number"

    def parse(value: str) -> int | float:
        try:
            return kind(value)
        except ValueError:
            raise typer.BadParameter(f"expected {expected}, got {value!r}") from None

    return parse


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


def write_file(path: Path, text: str) -> None:
    """Write whole or not at all: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def print_leaderboard(run_id: str, board: dict[str, Any]) -> None:
    title = (
        f"Leaderboard · run {run_id} · ranked by {board['metric']} "
        f"(95% CI over scenarios; ≈ tied with the leader)"
    )
    table = Table(title=title, title_justify="left")
    header, body = leaderboard.table_cells(board)
    for i, title in enumerate(header):
        name = title in ("model", "prompt")
        widest = max((len(row[i]) for row in body), default=0)
        table.add_column(
            title, justify="left" if name else "right", no_wrap=True, min_width=min(widest, 28)
        )
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
        _quiet_console()
    configure_prefect_servers()
    if overrides.get("local_models") is not None:
        overrides["local_models"] = _key_values(overrides["local_models"])
    config = load_config(config_file, suite=suite, **overrides)
    runs.check_run(config, run_id="check")

    from flows.benchmark import benchmark  # only `run` needs the flow objects

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
    print_leaderboard(result["run_id"], result["leaderboard"])
    _print_where(runs.get_run(result["run_id"]))


def _quiet_console() -> None:
    """Only warnings and errors on the terminal, where the progress bar and the leaderboard
    are; the Prefect UI still gets every log line. Prefect set up its logging when it was
    imported, before the options were read, so its console handler is turned down here; MLflow
    sets up its own when the pusher imports it and reads its level from the environment."""
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
    timeout: float = typer.Option(300.0, "--timeout", help="Give up after this many seconds."),
) -> None:
    """Push what MLflow has yet to receive (it was down, or a run ended before it caught up).
    Exit 0 when MLflow is up to date, 1 when items are still behind."""
    target = runs.get_run(run_id).id if run_id else None
    behind = tracking_outbox.sync(target, timeout)
    if behind:
        _print_behind(behind, target)
        raise typer.Exit(code=1)
    console.print(f"MLflow is up to date for {_scope(target)}")


@app.command("runs")
def list_runs(
    limit: int = typer.Option(20, help="How many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts and agents)."),
) -> None:
    """List benchmark runs."""
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
        print_leaderboard(run.id, run.leaderboard)
    _print_where(run)


@app.command("leaderboard")
def show_leaderboard(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write it as JSON here."),
) -> None:
    """Recompute (after new judgements, say) and print a run's leaderboard."""
    run = runs.get_run(run_id)
    scoring.score_run(run.id)
    board = reports.publish_leaderboard(run.id)
    print_leaderboard(run.id, board)
    _print_pairwise(run)
    _push_to_mlflow(run.id)
    if json_file:
        write_file(json_file, json.dumps(board, indent=2))
        console.print(f"leaderboard JSON: {json_file}")


@app.command()
def report(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    html: Path = typer.Option(..., "--html", help="Write the HTML report (table and charts) here."),
) -> None:
    """Write a run's self-contained HTML report: leaderboard table, heatmap, score intervals."""
    run = runs.get_run(run_id)
    write_file(html, reports.render_html(run, reports.current_leaderboard(run)))
    console.print(f"report: {html}")


@app.command()
def compare(
    run_id: str = typer.Argument(..., help="The run under test (id or unique prefix)."),
    baseline: str = typer.Option(..., "--baseline", help="Baseline run id, or `latest`."),
    eval_report: Path | None = typer.Option(
        None, "--eval-report", help="Write the machine-readable verdict (JSON) here."
    ),
    tolerance: float = typer.Option(0.0, min=0.0, help="Accepted mean quality drop."),
    allow_prompt_change: bool = typer.Option(
        False, help="Pair cells whose prompt text changed (the prompt is the change tested)."
    ),
) -> None:
    """Compare a run with a baseline. Exit 0 acceptable, 1 not acceptable, 2 bad input."""
    result = verdict.evaluate(runs.get_run(run_id).id, baseline, tolerance, allow_prompt_change)
    if eval_report:
        write_file(eval_report, result.model_dump_json(indent=2))
    print_verdict(result)
    if eval_report:
        console.print(f"eval report: {eval_report}")
    raise typer.Exit(code=0 if result.is_acceptable else 1)


def print_verdict(result: verdict.EvalReport) -> None:
    s = result.summary
    colour = "green" if result.is_acceptable else "red"
    word = "ACCEPTABLE" if result.is_acceptable else "NOT ACCEPTABLE"
    console.print(
        f"[bold {colour}]{word}[/]: run {result.run} vs baseline {result.baseline} · "
        f"aggregate score {_num(result.aggregate_score)} · mean quality delta "
        f"{_num(s.mean_quality_delta)} [95% CI {_num(s.ci_low)}, {_num(s.ci_high)}] · "
        f"tolerance {result.tolerance:g}"
    )
    console.print(
        f"{s.improved} improved · {s.regressed} regressed · {s.broken} broken · "
        f"{s.unchanged} unchanged · {s.unknown} unknown · {s.not_comparable} not comparable"
    )
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

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
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
    out: Path = typer.Option(..., "--out", help="Where to write the judge file (JSON)."),
    judge: str = typer.Option("", help="Pre-fill the judge and leave out what they judged."),
) -> None:
    """Write the rubric and the blind items (or pairs) to a file a person fills in."""
    run = runs.get_run(run_id)
    exporter = pairwise.export_file if pairwise.is_pairwise(run) else judging.export_file
    judge_file = exporter(run, judge)
    write_file(out, judge_file.model_dump_json(indent=2))
    console.print(f"{len(judge_file.items)} item(s) to judge: {out}")
    console.print(f"fill in `judge` and the choices, then: benchlib judge apply {out}")


@judge_app.command("apply")
def judge_apply(
    file: Path = typer.Argument(..., help="A filled judge file.", exists=True, dir_okay=False),
    resume: bool = typer.Option(False, help="Then continue the suspended flow run (approve)."),
) -> None:
    """Validate the whole file, then record its judgements in one transaction (idempotent)."""
    run_id, counts = pairwise.apply_any_file(file.read_text(), str(file))
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
    run = runs.get_run(run_id)
    flow_run_id = resume_run(run, approve)
    pending = pairwise.unjudged(run)
    console.print(f"resumed flow run {flow_run_id} ({pending} item(s) left unjudged)")


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
        write_file(doc.path, integrity.filled_text(doc))
        console.print(f"{doc.path}: wrote {changed} hash(es)")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("api")
def serve_api(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8765, envvar="BENCHLIB_API_PORT"),
    demo: bool = typer.Option(False, help="A local demo: no token needed (loopback only)."),
) -> None:
    """Serve the admin API and the judge and leaderboard pages. Needs BENCHLIB_API_TOKEN (and
    PREFECT_API_URL to trigger runs)."""
    import uvicorn

    from benchlib.api.app import create_app
    from benchlib.api.settings import ApiSettings

    settings = ApiSettings.from_env(demo)
    if not settings.token and host not in LOOPBACK:
        raise BenchlibError(f"--demo without a token serves on loopback only, not on {host}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


stack_app = typer.Typer(help="The local stack: Prefect server + worker + deployment, MLflow.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up(
    prefect_port: int = typer.Option(4200, envvar="BENCHLIB_PREFECT_PORT"),
    mlflow_port: int = typer.Option(5000, envvar="BENCHLIB_MLFLOW_PORT"),
    api_port: int = typer.Option(8765, envvar="BENCHLIB_API_PORT"),
) -> None:
    """Start the stack on 127.0.0.1 and register the `benchmark/default` deployment."""
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
    stopped = stack.down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Which stack processes run (pid) and where their logs are."""
    for name, pid in stack.status().items():
        console.print(f"{name}: {'running, pid ' + str(pid) if pid else 'stopped'}")
    console.print(f"logs: {stack.stack_dir()}")


@app.command()
def worker(
    slots: int = typer.Option(1, min=1, help="GPU slots of this host: models it runs at once."),
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
    """The console script: user errors print one clear message and exit 2, no traceback.

    The process then leaves without the interpreter's teardown: once the exit handlers have run
    (Prefect delivering its events and logs, stopping an ephemeral server; registered after this
    one, they run before it) there is nothing left to clean up, and freeing Prefect's, MLflow's
    and pandas' modules one by one took 1–3 s of every command here.
    """
    status = ExitStatus()
    atexit.register(status.leave)
    try:
        app(prog_name="benchlib")
    except BenchlibError as exc:
        status.code = 2
        _fail(str(exc))
    except SystemExit as exc:
        status.code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise
    except KeyboardInterrupt:
        status.code = 130
        raise


class ExitStatus:
    """The code the process exits with; an exception that escapes leaves it at 1."""

    code = 1

    def leave(self) -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.code)


if __name__ == "__main__":
    main()
