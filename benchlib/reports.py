"""Publishing a run's leaderboard: on the run record, in MLflow (through the outbox), and as a
self-contained HTML page with charts (inline SVG: no script or network needed to open it)."""

from pathlib import Path
from typing import Any

import jinja2
from sqlmodel import select

from benchlib import judging, scoring, tracking_outbox
from benchlib.db import session
from benchlib.leaderboard import build_leaderboard, table_cells
from benchlib.records import FINISHED, Run, Score
from benchlib.runs import get_run, run_candidates, run_cells
from benchlib.tracking_outbox import group_name
from benchlib.verdict import EvalReport

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
)


def compute_leaderboard(run: Run) -> dict[str, Any]:
    with session() as s:
        scores = list(s.exec(select(Score).where(Score.run_id == run.id)))
    return build_leaderboard(
        judging.rubric_of(run),
        run_cells(run.id),
        run_candidates(run.id),
        scores,
        judging.judgements_of(run.id),
        run.config["seed"],
    )


def current_leaderboard(run: Run) -> dict[str, Any]:
    """What was last published, else computed now (a run still collecting or judging)."""
    return run.leaderboard or compute_leaderboard(run)


def publish_leaderboard(run_id: str) -> dict[str, Any]:
    """Compute, store on the run, and log to MLflow: a metric set per (model, prompt) run, the
    JSON on the benchmark's run, and the report once the run is final (see runs.set_status;
    a finished run published again after new judgements gets it at once)."""
    run = get_run(run_id)
    board = compute_leaderboard(run)
    pending = judging.pending_groups(run)
    groups = {
        group_name(row["model"], row["prompt"]): {
            "metrics": group_metrics(board["metric"], row),
            "tags": {"judge_pending": str((row["model"], row["prompt"]) in pending).lower()},
        }
        for row in board["rows"]
    }
    finish: dict[str, Any] = {
        "metrics": {"cells": float(run.n_cells)},
        "tags": {"judge_pending": str(bool(pending)).lower()},
        "groups": groups,
        "artifacts": {"leaderboard.json": board},
    }
    if run.status in FINISHED:
        finish["artifacts"]["report.html"] = render_html(run, board)
        finish["status"] = "FINISHED"
    with session() as s:
        s.get(Run, run.id).leaderboard = board
        tracking_outbox.enqueue(s, run.id, "update", finish)
    return board


def group_metrics(metric: str, row: dict[str, Any]) -> dict[str, float]:
    """A leaderboard row as MLflow metrics with plain names (the run says which model and
    prompt): the ranking metric's mean and interval, both composites, every criterion and
    objective score, failure rate, latency, tokens/s, judge coverage. Missing values are left
    out: MLflow has no null metric."""
    values = {
        f"{metric}_mean": row["mean"],
        f"{metric}_ci_low": row["ci_low"],
        f"{metric}_ci_high": row["ci_high"],
        "composite": row["composite"],
        "auto_composite": row["auto_composite"],
        **row["criteria"],
        **row["scores"],
        "failure_rate": row["failure_rate"],
        "latency_p50_s": row["latency_p50_s"],
        "latency_p95_s": row["latency_p95_s"],
        "tokens_per_s": row["tokens_per_s"],
        "judge_coverage": row["judge_coverage"],
    }
    return {name: float(value) for name, value in values.items() if value is not None}


def refresh_leaderboard(run_id: str) -> dict[str, Any] | None:
    """Re-score and re-publish a finished run after new judgements. None while its flow is
    still going: a suspended run scores once it is resumed."""
    run = get_run(run_id)
    if run.status not in FINISHED:
        return None
    scoring.score_run(run.id)
    return publish_leaderboard(run.id)


def _fill(value: float | None, low: float, high: float) -> tuple[str, str]:
    """Background and text colours: pale to strong blue from the worst to the best group."""
    if value is None:
        return "#eeeeee", "#1d2430"
    t = 0.5 if high == low else (value - low) / (high - low)
    r, g, b = (int(a + (z - a) * t) for a, z in zip((234, 241, 253), (39, 94, 196), strict=True))
    return f"rgb({r},{g},{b})", "#ffffff" if t > 0.6 else "#1d2430"


def _heatmap(rows: list[dict[str, Any]]) -> dict[str, Any]:
    models = list(dict.fromkeys(r["model"] for r in rows))
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    means = [r["mean"] for r in rows if r["mean"] is not None]
    low, high = (min(means), max(means)) if means else (0.0, 0.0)
    left, top, w, h = 200, 28, 120, 36
    by_key = {(r["model"], r["prompt"]): r for r in rows}
    cells = []
    for i, model in enumerate(models):
        for j, prompt in enumerate(prompts):
            row = by_key.get((model, prompt))
            value = row["mean"] if row else None
            fill, ink = _fill(value, low, high)
            cells.append(
                {
                    "x": left + j * w,
                    "y": top + i * h,
                    "w": w - 2,
                    "h": h - 2,
                    "fill": fill,
                    "ink": ink,
                    "text": "—" if value is None else f"{value:.2f}",
                    "title": f"{model} · {prompt}",
                }
            )
    return {
        "width": left + w * len(prompts) + 10,
        "height": top + h * len(models) + 10,
        "columns": [{"x": left + j * w + w / 2, "text": p} for j, p in enumerate(prompts)],
        "rows": [
            {"x": left - 8, "y": top + i * h + h / 2 + 4, "text": m} for i, m in enumerate(models)
        ],
        "cells": cells,
    }


def _bars(rows: list[dict[str, Any]]) -> dict[str, Any]:
    points = [v for r in rows for v in (r["mean"], r["ci_low"], r["ci_high"]) if v is not None]
    low, high = min([0.0, *points]), max([0.0, *points]) or 1.0
    left, width = 320, 420
    scale = width / (high - low) if high > low else 1.0

    def x(value: float) -> float:
        return left + (value - low) * scale

    bars = []
    for i, row in enumerate(rows):
        mean = row["mean"] if row["mean"] is not None else 0.0
        start, end = sorted((x(0.0), x(mean)))
        bars.append(
            {
                "y": 8 + i * 28,
                "x": start,
                "w": max(end - start, 1),
                "label": f"{row['model']} · {row['prompt']}",
                "title": f"{mean:.2f} [{row['ci_low']}, {row['ci_high']}]",
                "whisker": (
                    (x(row["ci_low"]), x(row["ci_high"])) if row["ci_low"] is not None else None
                ),
            }
        )
    return {
        "width": left + width + 20,
        "height": 16 + 28 * len(rows),
        "label_x": left - 8,
        "zero": x(0.0),
        "bars": bars,
    }


def render_html(run: Run, board: dict[str, Any]) -> str:
    header, body = table_cells(board)
    agreement = {k: v for k, v in board["agreement"].items() if v is not None}
    return TEMPLATES.get_template("report.html.j2").render(
        run=run,
        board=board,
        header=header,
        body=body,
        heat=_heatmap(board["rows"]),
        bars=_bars(board["rows"]),
        agreement=agreement,
    )


def publish_verdict(report: EvalReport) -> None:
    """Store the eval report on the run and on its MLflow run."""
    data = report.model_dump(mode="json")
    with session() as s:
        s.get(Run, report.run).eval_report = data
        tracking_outbox.enqueue(s, report.run, "update", {"artifacts": {"eval_report.json": data}})


def verdict_markdown(report: EvalReport) -> str:
    s = report.summary
    verdict = "ACCEPTABLE" if report.is_acceptable else "NOT ACCEPTABLE"
    lines = [
        f"# {verdict}: run `{report.run}` against baseline `{report.baseline}`",
        "",
        f"aggregate score {report.aggregate_score}, mean quality delta {s.mean_quality_delta} "
        f"(95% CI {s.ci_low} … {s.ci_high}), tolerance {report.tolerance}",
        "",
        f"{s.improved} improved · {s.regressed} regressed · {s.broken} broken · "
        f"{s.unchanged} unchanged · {s.unknown} unknown · {s.not_comparable} not comparable",
        "",
        "Worst pairs: " + ", ".join(f"`{name}`" for name in s.worst),
    ]
    return "\n".join(lines)
