"""Reading results: `runs`, `show`, `leaderboard`, `report`, `compare`."""

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from benchlib import bounds, files
from benchlib.cli.app import app
from benchlib.cli.common import (
    console,
    output_path,
    print_leaderboard,
    print_pairwise,
    push_to_mlflow,
    signed,
)
from benchlib.cli.run import _print_where
from benchlib.errors import BenchlibError
from benchlib.evaluation import experiment, leaderboard, reports, scoring, verdict
from benchlib.store import db, runs
from benchlib.tracking import outbox as tracking_outbox


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
    run_id: str | None = typer.Argument(None, help="Run id (or a unique prefix)."),
    experiment_name: str | None = typer.Option(
        None,
        "--experiment",
        help="Instead of a run: the experiment's finished runs pooled (each cell once).",
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="Also write it as JSON here.", callback=output_path
    ),
    wide: bool = typer.Option(False, "--wide", help="Every column: steps, criteria, scores."),
) -> None:
    """Recompute (after new judgements, say) and print a run's leaderboard, or an
    experiment's across its runs (`--experiment NAME`)."""
    if (run_id is None) == (experiment_name is None):
        raise BenchlibError("give a run id or --experiment NAME (one of the two)")
    if run_id is None:
        pooled = experiment.experiment_leaderboard(str(experiment_name))
        print_experiment(pooled, wide)
        if json_file:
            files.write_atomic(json_file, pooled.model_dump_json(indent=2))
            console.print(f"leaderboard JSON: {json_file}")
        return
    run = runs.get_run(run_id)
    scoring.score_run(run.id)
    board = reports.publish_leaderboard(run.id)
    print_leaderboard(run.id, board, wide)
    print_pairwise(run)
    push_to_mlflow(run.id)
    if json_file:
        files.write_atomic(json_file, board.model_dump_json(indent=2))
        console.print(f"leaderboard JSON: {json_file}")


def print_experiment(board: experiment.ExperimentLeaderboard, wide: bool) -> None:
    """The experiment's board, then the runs it pooled and what it kept apart."""
    print_leaderboard(board.experiment, board, wide, scope=f"experiment {board.experiment}")
    table = Table(title=f"runs pooled · rubric {board.rubric}", title_justify="left")
    for column in ("run", "status", "created", "cells counted", "superseded", "judgements"):
        table.add_column(column)
    for run in board.runs:
        table.add_row(
            run.run_id,
            run.status,
            f"{run.created_at:%Y-%m-%d %H:%M}",
            str(run.cells),
            str(run.superseded),
            str(run.judgements),
        )
    console.print(table)
    for name in board.split:
        console.print(f"  {name}: several contents, each shown as name@hash", highlight=False)
    if board.other_rubric_judgements:
        console.print(
            f"  {board.other_rubric_judgements} judgement(s) under another rubric not used",
            highlight=False,
        )


@app.command()
def report(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    html: Path = typer.Option(
        ..., "--html", help="Write the HTML report (table and charts) here.", callback=output_path
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
        callback=output_path,
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
    return "n/a (one scenario)" if low is None else f"{signed(low)}, {signed(high)}"


def print_verdict(result: verdict.EvalReport) -> None:
    s = result.summary
    colour = "green" if result.is_acceptable else "red"
    word = "ACCEPTABLE" if result.is_acceptable else "NOT ACCEPTABLE"
    rule = "every pair improved" if result.rule == "improvement" else "no regression"
    console.print(
        f"[bold {colour}]{word}[/] ({rule}): run {result.run} vs baseline {result.baseline} · "
        f"aggregate score {signed(result.aggregate_score)} · mean quality delta "
        f"{signed(s.mean_quality_delta)} [{s.confidence:.0%} CI {_interval(s.ci_low, s.ci_high)}] "
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
            signed(g.mean_quality_delta),
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
            signed(pair.quality_delta),
            signed(pair.score),
            ", ".join(pair.broken_checks) or "no",
            "yes" if pair.output_changed else "no",
            signed(pair.latency_delta),
        )
    console.print(table)
