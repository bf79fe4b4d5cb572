"""`benchlib judge ...`: human judging in the terminal or by file, the model judge, agreement."""

import json
from pathlib import Path

import typer
from rich.table import Table
from typer.core import TyperGroup

from benchlib import files
from benchlib.cli.app import app
from benchlib.cli.common import (
    console,
    judge_run_in_terminal,
    output_path,
    print_leaderboard,
    print_pairwise,
    push_to_mlflow,
)
from benchlib.errors import BenchlibError
from benchlib.evaluation import autojudge, experiment, judging, pairwise, reports
from benchlib.store import runs
from benchlib.store.records import RunStatus


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
        print_pairwise(run)
        push_to_mlflow(run.id)
    elif run.status == RunStatus.awaiting_judge:
        console.print(f"the flow is waiting for judges: `benchlib judge resume {run.id}`")


@judge_app.command("session", hidden=True)
def judge_session(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    judge: str = typer.Option(..., "--judge", prompt="Your name or id", help="Who is judging."),
) -> None:
    """Judge in the terminal, one blind item at a time (resumable)."""
    run = runs.get_run(run_id)
    judge_run_in_terminal(run, judge)
    refresh(run.id)


@judge_app.command("export")
def judge_export(
    run_id: str | None = typer.Argument(None, help="Run id (or a unique prefix)."),
    experiment_name: str | None = typer.Option(
        None,
        "--experiment",
        help="Instead of a run: what the experiment's leaderboard still needs judged, across "
        "its runs.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Where to write the judge file (JSON).", callback=output_path
    ),
    judge: str = typer.Option(
        "", help="Pre-fill the judge and leave out what they judged (default: what nobody has)."
    ),
    sample: str | None = typer.Option(
        None, "--sample", help="Spot check: a stratified sample of N items or a fraction (0.2)."
    ),
) -> None:
    """Write the rubric and the blind unjudged items (or pairs) to a file a person fills in."""
    if (run_id is None) == (experiment_name is None):
        raise BenchlibError("give a run id or --experiment NAME (one of the two)")
    if run_id is None:
        _export_experiment(str(experiment_name), out, judge, sample)
        return
    run = runs.get_run(run_id)
    judge_file: judging.JudgeFile | pairwise.PairsFile
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


def _export_experiment(name: str, out: Path, judge: str, sample: str | None) -> None:
    if sample is not None:
        raise BenchlibError("--sample: a spot check is of one run; give its run id")
    judge_file = experiment.export_file(name, judge)
    files.write_atomic(out, judge_file.model_dump_json(indent=2))
    console.print(f"{len(judge_file.items)} item(s) to judge across {name}: {out}")
    console.print(f"fill in `judge` and the scores, then: benchlib judge apply {out}")


@judge_app.command("apply")
def judge_apply(
    file: Path = typer.Argument(..., help="A filled judge file.", exists=True, dir_okay=False),
    resume: bool = typer.Option(False, help="Then continue the suspended flow run (approve)."),
) -> None:
    """Validate the whole file, then record its judgements in one transaction (idempotent);
    an experiment's file, each item in its own run (every run checked before any is written)."""
    text = files.read_text(file, "judge file")
    if _experiment_of(text):
        judge_file = judging.parse_file(text, str(file))
        for run_id, counts in experiment.apply_file(judge_file, str(file)).items():
            console.print(
                f"run {run_id}: {counts['added']} added, {counts['updated']} updated, "
                f"{counts['unchanged']} unchanged"
            )
            refresh(run_id)
        return
    run_id, counts = pairwise.apply_any_file(text, str(file))
    console.print(
        f"run {run_id}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged"
    )
    if resume:
        judge_resume(run_id, approve=True)
    else:
        refresh(run_id)


def _experiment_of(text: str) -> str:
    """The experiment an experiment's judge file names ("" for a run's file or bad JSON, which
    the run's path reports)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return ""
    return str(data.get("experiment") or "") if isinstance(data, dict) else ""


@judge_app.command("resume")
def judge_resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    approve: bool = typer.Option(True, help="Continue with what is judged (else wait again)."),
) -> None:
    """Continue a benchmark flow run that waits for judges."""
    from benchlib.pipeline.orchestration import resume_run

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
