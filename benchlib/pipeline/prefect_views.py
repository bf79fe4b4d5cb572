"""What the Prefect UI shows of a benchmark run: the judge form, the run's links, its artifacts.

Prefect renders these strings as Markdown. Model outputs and scenario values are content written
by a model or a user, never markup: outputs go in a code fence longer than any backtick run they
hold, table cells have every Markdown punctuation character backslash-escaped.
"""

import json
import re
from datetime import datetime
from typing import Any

from benchlib import settings
from benchlib.evaluation import judging, pairwise
from benchlib.evaluation.leaderboard import Leaderboard, coverage_label, rank_label
from benchlib.spec.rubric import Rubric
from benchlib.store.records import Run

# CommonMark lets a backslash escape any ASCII punctuation character, and only those.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def fenced(text: str) -> str:
    """A code block showing `text` verbatim, whatever backticks it contains."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def cell(value: Any) -> str:
    """One value as plain text in a Markdown table cell (on one line)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _PUNCTUATION.sub(r"\\\1", " ".join(text.split())) or " "


def context_table(context: dict[str, Any]) -> str:
    lines = ["| field | value |", "|---|---|"]
    lines += [f"| {cell(key)} | {cell(value)} |" for key, value in context.items()]
    return "\n".join(lines)


def judge_page_url(run_id: str) -> str:
    return f"{settings.api_url()}/runs/{run_id}/judge"


def report_url(run_id: str) -> str:
    return f"{settings.api_url()}/runs/{run_id}/leaderboard"


def mlflow_run_url(run: Run, ui_fallback: str = "") -> str | None:
    """The run in the MLflow UI: its tracking server when it has one, else `ui_fallback` (a UI
    over the local store); None before MLflow has the run or without a UI."""
    tracking = run.config.get("mlflow_url") or ""
    ui = tracking if tracking.startswith("http") else ui_fallback
    if not (run.mlflow_run_id and ui):
        return None
    return f"{ui.rstrip('/')}/#/runs/{run.mlflow_run_id}"


def form_description(run: Run, counted_at: datetime, problem: str = "") -> str:
    """The Resume form: the judge page first, then how else to judge, the rubric (or the
    pairwise question) and the items left, outputs verbatim."""
    paired = pairwise.is_pairwise(run)
    if paired:
        everything: list[Any] = pairwise.pairs_of(run)
        pending: list[Any] = pairwise.pending_pairs(run, pairs=everything)
        unit = "pairs"
        inline = '**choices** as `{"PAIR_ID": "a"}` (a, b or tie)'
    else:
        everything = judging.judge_items(run)
        pending = judging.pending_items(run, items=everything)
        unit = "outputs"
        inline = '**scores** as `{"ITEM_ID": {"CRITERION": LEVEL}}`'
    lines = []
    if problem:
        lines += [f"**The last input was not applied:** {cell(problem)}", ""]
    lines += [
        f"## Judge run `{run.id}` on the judge page: {judge_page_url(run.id)}",
        "",
        f"{len(pending)} of {len(everything)} {unit} were unjudged at "
        f"{counted_at:%Y-%m-%d %H:%M:%S} UTC (counted when the run suspended; the judge page "
        "shows the current count). The page is keyboard-first and approves the run.",
        "",
        "Other ways (all record the same blind judgements):",
        f"- in a terminal: `benchlib judge {run.id} --judge YOUR_NAME`",
        f"- with a file: `benchlib judge export {run.id} --out judge.json`, fill it, then "
        "`benchlib judge apply judge.json --resume`",
        f"- here, for a few: your name in **judge**, then {inline} and submit.",
        "",
        "Tick **approve** when judging is done (the run continues with what is recorded); "
        "submit without it to record and wait for more.",
        "",
    ]
    if paired:
        lines += ["### The question", "", cell(pairwise.INSTRUCTIONS)]
    else:
        lines += _rubric_lines(judging.rubric_of(run))
    lines += ["", f"### Unjudged {unit}" + (" (first 10)" if len(pending) > 10 else "")]
    for item in pending[:10]:
        if paired:
            lines += ["", f"#### pair `{item.pair_id}`", "", context_table(item.context), ""]
            lines += ["**A**", "", fenced(item.a.output), "", "**B**", "", fenced(item.b.output)]
        else:
            lines += ["", f"#### `{item.item_id}`", "", context_table(item.context), ""]
            lines += [fenced(item.output)]
    return "\n".join(lines)


def _rubric_lines(rubric: Rubric) -> list[str]:
    lines = [f"### Rubric {rubric.version}"]
    if rubric.description:
        lines += ["", cell(rubric.description), ""]
    for criterion in rubric.criteria:
        lines.append(f"- **{criterion.name}**: {cell(criterion.question)}")
        lines += [f"  - {lvl.score}: {cell(lvl.description)}" for lvl in criterion.levels]
    return lines


def artifact_rows(board: Leaderboard, n_candidates: int) -> list[dict[str, Any]]:
    """The leaderboard table artifact, its columns named as the config names things:
    `n_candidates` is per cell as in the config, `outputs` what the row's ranked steps
    produced, the ranking metric under its own name, coverage beside it."""
    metric = board.metric
    return [
        {
            "rank": rank_label(row),
            "model": row.model,
            "prompt": row.prompt,
            "n_scenarios": row.n_scenarios,
            "n_candidates": n_candidates,
            "outputs": row.n_outputs,
            "coverage": coverage_label(row),
            "judge_coverage": row.judge_coverage,
            metric: row.mean,
            f"{metric}_ci_low": row.ci_low,
            f"{metric}_ci_high": row.ci_high,
            **row.criteria,
            **row.scores,
            "failed_cells": row.failed_cells,
            "latency_p50_s": row.latency_p50_s,
            "tokens_per_s": row.tokens_per_s,
        }
        for row in board.rows
    ]


def links_markdown(run: Run, mlflow_ui: str = "") -> str:
    """The parent flow run's summary: where the leaderboard, report and MLflow run are."""
    mlflow = mlflow_run_url(run, mlflow_ui)
    if mlflow is None and run.mlflow_run_id:
        store = run.config.get("mlflow_url") or "the local store"
        mlflow = f"`{run.mlflow_run_id}` in {cell(store)}"
    lines = [
        f"# Benchmark run `{run.id}`: {run.status.value}",
        "",
        f"- HTML report (leaderboard, charts): {report_url(run.id)}",
        f"- MLflow run: {mlflow or f'not created yet: `benchlib sync {run.id}`'}",
        f"- judge page: {judge_page_url(run.id)}",
        "",
        "The leaderboard table is this flow run's `leaderboard` artifact.",
    ]
    return "\n".join(lines)
