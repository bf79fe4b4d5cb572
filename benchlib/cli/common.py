"""What every command shares: the consoles, config options, errors, output paths, tables."""

import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import AliasChoices
from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchlib import bounds, files
from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.evaluation import leaderboard, pairwise
from benchlib.evaluation.judge_session import judge_in_terminal, judge_pairs_in_terminal
from benchlib.store import runs
from benchlib.tracking import outbox as tracking_outbox


def consoles() -> tuple[Console, Console]:
    """Piped output (CI logs) gets a wide console so tables are not cut to 80 columns, unless
    COLUMNS says how wide it is."""
    fixed = "COLUMNS" in os.environ
    return (
        Console(width=None if fixed or sys.stdout.isatty() else 240),
        Console(stderr=True, width=None if fixed or sys.stderr.isatty() else 240),
    )


console, err_console = consoles()


def option_for(name: str, field: Any) -> inspect.Parameter:
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
        option_for(name, field)
        for name, field in BenchmarkConfig.model_fields.items()
        if name != "suite"
    ]
    command.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in own + extra}
    return command


def fail(message: str) -> None:
    # Text, not markup: a message quoting `openai:m:` or `[bold]` is printed as written.
    err_console.print(Text.assemble(("error: ", "bold red"), message))
    sys.exit(2)


def key_values(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchlibError(f"--local-model: expected ALIAS=PATH, got {item!r}")
        pairs[key] = value
    return pairs


def output_path(value: Path | None) -> Path | None:
    """Every option naming a file to write: checked before the command does any work."""
    if value is not None:
        problem = files.output_problem(value)
        if problem:
            raise typer.BadParameter(f"{value}: {problem}")
    return value


def print_table(title: str, header: list[str], body: list[list[str]]) -> None:
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


def print_leaderboard(
    run_id: str, board: leaderboard.Leaderboard, wide: bool = False, scope: str = ""
) -> None:
    """The compact table (fits a terminal), or every column with `wide`; the steps of chains in
    a table of their own; then the notes that say how to read them. `scope` names what the
    board covers (default: the run)."""
    scope = scope or f"run {run_id}"
    title = f"Leaderboard · {scope} · ranked on {board.ranked_on} by {board.metric}"
    print_table(title, *leaderboard.table_cells(board, wide=wide))
    header, body = leaderboard.step_cells(board)
    if header and not wide:
        print_table(f"Steps · {scope} (* ranked)", header, body)
    for note in leaderboard.notes(board):
        console.print(f"  {note}", highlight=False, soft_wrap=False)


def push_to_mlflow(run_id: str) -> None:
    """Commands that publish (leaderboard, verdict) wait for MLflow like the end of a run."""
    run = runs.get_run(run_id)
    default = BenchmarkConfig.model_fields["mlflow_flush_s"].default
    behind = tracking_outbox.sync(run.id, run.config.get("mlflow_flush_s", default))
    if behind:
        print_behind(behind, run.id)


def print_behind(behind: int, run_id: str | None) -> None:
    """One wording wherever MLflow lags: how much, the error MLflow last gave, and the fix."""
    error = tracking_outbox.last_error(run_id) if run_id else None
    command = f"benchlib sync {run_id}" if run_id else "benchlib sync"
    console.print(
        f"[yellow]MLflow: {behind} items behind for {scope(run_id)}[/]"
        + (f" (last error: {error[:200]})" if error else "")
        + f"; push them with `{command}`",
        highlight=False,
    )


def scope(run_id: str | None) -> str:
    return f"run {run_id}" if run_id else "all runs"


def print_set_aside(run_id: str | None) -> None:
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


def judge_run_in_terminal(run: Any, judge: str) -> None:
    """A person judges the run here: its blind items on the rubric, or its pairs."""
    if pairwise.is_pairwise(run):
        judge_pairs_in_terminal(run, judge, console)
    else:
        judge_in_terminal(run, judge, console)


def print_pairwise(run: Any) -> None:
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
            f"({agreement.pairs_judged_twice} pairs; alpha {signed(agreement.alpha)})"
        )


LOOPBACK = ("127.0.0.1", "localhost", "::1")
PORT = bounds.number_option(int, bounds.MIN_PORT, bounds.MAX_PORT)


def signed(value: float | None) -> str:
    """A difference as people compare them: always signed, a dash when there is none."""
    return "—" if value is None else f"{value:+.3f}"
