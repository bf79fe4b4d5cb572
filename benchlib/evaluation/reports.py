"""Publishing a run's leaderboard: on the run record, in MLflow (through the outbox), and as a
self-contained HTML page with charts (inline SVG: no script or network needed to open it)."""

from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from sqlmodel import select

from benchlib.evaluation import autojudge, judging, scoring
from benchlib.evaluation.leaderboard import (
    Leaderboard,
    Row,
    build_leaderboard,
    coverage_label,
    interval_label,
    notes,
    rank_label,
    table_cells,
)
from benchlib.evaluation.verdict import EvalReport
from benchlib.store.db import session
from benchlib.store.records import FINISHED, Run, Score
from benchlib.store.runs import get_run, run_candidates, run_cells
from benchlib.tracking import outbox as tracking_outbox
from benchlib.tracking.outbox import group_name

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True,
)


def compute_leaderboard(run: Run) -> Leaderboard:
    with session() as s:
        scores = list(s.exec(select(Score).where(Score.run_id == run.id)))
    judges = scoring.judges_of(run)
    return build_leaderboard(
        judging.rubric_of(run),
        run_cells(run.id),
        run_candidates(run.id),
        scores,
        scoring.composite_judgements(judging.judgements_of(run.id), judges),
        run.config["seed"],
        rank_on=run.rank_on,
        judges=judges,
        model_agreement=autojudge.calibration(run.id).judges,
    )


def current_leaderboard(run: Run) -> Leaderboard:
    """What was last published, else computed now (a run still collecting or judging)."""
    if run.leaderboard:
        return Leaderboard.model_validate(run.leaderboard)
    return compute_leaderboard(run)


def publish_leaderboard(run_id: str) -> Leaderboard:
    """Compute, store on the run, and log to MLflow: a metric set per (model, prompt) run, the
    JSON on the benchmark's run, and the report once the run is final (see runs.set_status;
    a finished run published again after new judgements gets it at once)."""
    run = get_run(run_id)
    board = compute_leaderboard(run)
    pending = judging.pending_groups(run)
    groups = {
        group_name(row.model, row.prompt): {
            "metrics": group_metrics(board.metric, row),
            "tags": {"judge_pending": str((row.model, row.prompt) in pending).lower()},
        }
        for row in board.rows
    }
    data = board.model_dump(mode="json")
    finish: dict[str, Any] = {
        "metrics": {"cells": float(run.n_cells)},
        "tags": {"judge_pending": str(bool(pending)).lower()},
        "groups": groups,
        "artifacts": {"leaderboard.json": data},
    }
    if run.status in FINISHED:
        finish["artifacts"]["report.html"] = render_html(run, board)
        finish["status"] = "FINISHED"
    with session() as s:
        s.get_one(Run, run.id).leaderboard = data
        tracking_outbox.enqueue(s, run.id, "update", finish)
    return board


def group_metrics(metric: str, row: Row) -> dict[str, float]:
    """A leaderboard row as MLflow metrics with plain names (the run says which model and
    prompt): the ranking metric's mean and interval, both composites, every criterion and
    objective score, failure rate, latency, tokens/s, coverage. Missing values are left out:
    MLflow has no null metric."""
    values = {
        f"{metric}_mean": row.mean,
        f"{metric}_ci_low": row.ci_low,
        f"{metric}_ci_high": row.ci_high,
        "composite": row.composite,
        "auto_composite": row.auto_composite,
        **row.criteria,
        **row.scores,
        "failure_rate": row.failure_rate,
        "latency_p50_s": row.latency_p50_s,
        "latency_p95_s": row.latency_p95_s,
        "tokens_per_s": row.tokens_per_s,
        "coverage": row.coverage,
        "judge_coverage": row.judge_coverage,
    }
    return {name: float(value) for name, value in values.items() if value is not None}


def refresh_leaderboard(run_id: str) -> Leaderboard | None:
    """Re-score and re-publish a finished run after new judgements. None while its flow is
    still going: a suspended run scores once it is resumed."""
    run = get_run(run_id)
    if run.status not in FINISHED:
        return None
    if run.scored_at is None:
        scoring.score_run(run.id)
    else:  # judgements change human scores and composites only: no suite folder needed
        scoring.rescore_judgements(run.id)
    return publish_leaderboard(run.id)


def _fill(value: float | None, low: float, high: float) -> tuple[str, str]:
    """Background and text colours: pale to strong blue from the worst to the best group."""
    if value is None:
        return "#eeeeee", "#1d2430"
    t = 0.5 if high == low else (value - low) / (high - low)
    r, g, b = (int(a + (z - a) * t) for a, z in zip((234, 241, 253), (39, 94, 196), strict=True))
    return f"rgb({r},{g},{b})", "#ffffff" if t > 0.6 else "#1d2430"


def _heatmap(rows: list[Row]) -> dict[str, Any]:
    models = list(dict.fromkeys(r.model for r in rows))
    prompts = list(dict.fromkeys(r.prompt for r in rows))
    means = [r.mean for r in rows if r.mean is not None]
    low, high = (min(means), max(means)) if means else (0.0, 0.0)
    left, top, w, h = 200, 28, 120, 36
    by_key = {(r.model, r.prompt): r for r in rows}
    cells = []
    for i, model in enumerate(models):
        for j, prompt in enumerate(prompts):
            row = by_key.get((model, prompt))
            value = row.mean if row else None
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
                    "title": f"{model} · {prompt}"
                    + (f" · coverage {row.coverage:.0%}" if row else ""),
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


def _bars(rows: list[Row]) -> dict[str, Any]:
    """Bars of each row's mean with its interval as a whisker, on an axis with values; a row
    without an interval says why beside its bar."""
    points = [v for r in rows for v in (r.mean, r.ci_low, r.ci_high) if v is not None]
    low, high = min([0.0, *points]), max([0.0, *points]) or 1.0
    left, width, top = 260, 360, 8
    scale = width / (high - low) if high > low else 1.0

    def x(value: float) -> float:
        return left + (value - low) * scale

    bars = []
    for i, row in enumerate(rows):
        mean = row.mean if row.mean is not None else 0.0
        start, end = sorted((x(0.0), x(mean)))
        interval = interval_label(row)
        bars.append(
            {
                "y": top + i * 28,
                "x": start,
                "w": max(end - start, 1),
                "label": f"{row.model} · {row.prompt}",
                "value": f"{_num(row.mean)} [{interval}] · coverage {coverage_label(row)}",
                "whisker": (
                    (x(row.ci_low), x(row.ci_high))
                    if row.ci_low is not None and row.ci_high is not None
                    else None
                ),
            }
        )
    axis_y = top + 28 * len(rows) + 4
    ticks = [{"x": x(v), "text": f"{v:.2f}"} for v in np.linspace(low, high, 5)]
    return {
        "width": left + width + 330,
        "height": axis_y + 22,
        "label_x": left - 8,
        "value_x": left + width + 10,
        "zero": x(0.0),
        "axis": {"y": axis_y, "x1": left, "x2": left + width, "ticks": ticks},
        "bars": bars,
    }


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _drilldown(run: Run, board: Leaderboard) -> list[dict[str, Any]]:
    """Per row, its cells: each output (every step and attempt) with its scores and what each
    judge gave it, for the report's per-cell view."""
    with session() as s:
        scores = list(s.exec(select(Score).where(Score.run_id == run.id)))
    by_candidate: dict[int, list[str]] = defaultdict(list)
    for score in scores:
        by_candidate[score.candidate_id].append(f"{score.name} {score.value:.2f}")
    judged: dict[int, list[str]] = defaultdict(list)
    for j in judging.judgements_of(run.id):
        given = ", ".join(f"{name} {value:g}" for name, value in j.scores.items())
        judged[j.candidate_id].append(
            f"{j.judge}: {given}" + (f" ({j.comment})" if j.comment else "")
        )
    outputs: dict[str, list[Any]] = defaultdict(list)
    for candidate in run_candidates(run.id):
        outputs[candidate.cell_id].append(candidate)
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in run_cells(run.id):
        cells[(cell.model, cell.prompt_version)].append(
            {
                "scenario": cell.scenario_id,
                "status": cell.status,
                "error": cell.error or "",
                "outputs": [
                    {
                        "step": c.step,
                        "attempt": c.index,
                        "text": c.error or c.text,
                        "scores": ", ".join(sorted(by_candidate[c.id])),
                        "judges": "; ".join(judged[c.id]),
                    }
                    for c in outputs[cell.id]
                ],
            }
        )
    return [
        {
            "label": f"{rank_label(row)} · {row.model} · {row.prompt}",
            "cells": cells[(row.model, row.prompt)],
        }
        for row in board.rows
    ]


def render_html(run: Run, board: Leaderboard) -> str:
    header, body = table_cells(board)
    wide_header, wide_body = table_cells(board, wide=True)
    agreement = {k: v for k, v in board.agreement.items() if v is not None}
    return TEMPLATES.get_template("report.html.j2").render(
        run=run,
        board=board,
        header=header,
        body=body,
        wide_header=wide_header,
        wide_body=wide_body,
        notes=notes(board),
        heat=_heatmap(board.rows),
        bars=_bars(board.rows),
        agreement=agreement,
        drilldown=_drilldown(run, board),
    )


def publish_verdict(report: EvalReport) -> None:
    """Store the eval report on the run and on its MLflow run."""
    data = report.model_dump(mode="json")
    with session() as s:
        s.get_one(Run, report.run).eval_report = data
        tracking_outbox.enqueue(s, report.run, "update", {"artifacts": {"eval_report.json": data}})


def verdict_markdown(report: EvalReport) -> str:
    s = report.summary
    verdict = "ACCEPTABLE" if report.is_acceptable else "NOT ACCEPTABLE"
    lines = [
        f"# {verdict}: run `{report.run}` against baseline `{report.baseline}`",
        "",
        f"rule {report.rule}, aggregate score {report.aggregate_score}, mean quality delta "
        f"{s.mean_quality_delta} over {s.scenarios} scenarios ({s.confidence:.0%} CI {s.ci_low} … "
        f"{s.ci_high}, {s.interval_method}), tolerance {report.tolerance}",
        "",
        *(
            [f"**Interval unreliable**: fewer than {s.min_scenarios} scenarios.", ""]
            if not s.interval_reliable
            else []
        ),
        *(f"- not acceptable: {reason}" for reason in report.reasons),
        *([""] if report.reasons else []),
        f"{s.cached_outputs} of {s.outputs} outputs from the response cache "
        f"(baseline: {s.baseline_cached_outputs}); their pairs have no latency delta.",
        "",
        f"{s.improved} improved · {s.regressed} regressed · {s.broken} broken · "
        f"{s.unchanged} unchanged · {s.unknown} unknown · {s.not_comparable} not comparable",
        "",
        "Worst pairs: " + ", ".join(f"`{name}`" for name in s.worst),
    ]
    return "\n".join(lines)
