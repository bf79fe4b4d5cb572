"""The leaderboard: one row per (model, prompt version), best first.

Ranked by the rubric composite where candidates are judged; until then by the automatic part of
the composite (the rubric's weights applied to the flags scorers compute).
"""

from collections import defaultdict
from typing import Any

import numpy as np
from sqlmodel import select

from benchlib import tracking
from benchlib.db import session
from benchlib.records import Candidate, Cell, CellStatus, Run, Score
from benchlib.runs import get_run, run_candidates, run_cells
from benchlib.scoring import AUTO_COMPOSITE, COMPOSITE


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def build_leaderboard(
    cells: list[Cell], candidates: list[Candidate], scores: list[Score]
) -> list[dict[str, Any]]:
    """Rows from the recorded scores: the composites were computed (and their formula stored)
    by scoring, so this only aggregates."""
    by_candidate: dict[int, dict[str, float]] = defaultdict(dict)
    for score in scores:
        by_candidate[score.candidate_id][score.name] = score.value

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        group = groups.setdefault(
            (cell.model, cell.prompt_version), {"cells": [], "candidates": [], "scenarios": set()}
        )
        group["cells"].append(cell)
        group["scenarios"].add(cell.scenario_id)
    cell_group = {cell.id: (cell.model, cell.prompt_version) for cell in cells}
    for candidate in candidates:
        groups[cell_group[candidate.cell_id]]["candidates"].append(candidate)

    rows = []
    for (model, prompt), group in groups.items():
        cands: list[Candidate] = group["candidates"]
        values = [by_candidate.get(c.id, {}) for c in cands]
        score_names = sorted({name for v in values for name in v} - {COMPOSITE, AUTO_COMPOSITE})
        composites = [v[COMPOSITE] for v in values if COMPOSITE in v]
        produced = [c for c in cands if c.error is None]
        latencies = [c.latency_s for c in produced]
        generation_s = sum(latencies)
        failed = sum(cell.status == CellStatus.failed for cell in group["cells"])
        rows.append(
            {
                "model": model,
                "prompt": prompt,
                "n_scenarios": len(group["scenarios"]),
                "n_cells": len(group["cells"]),
                "n_candidates": len(cands),
                "judged": len(composites),
                "composite": _mean(composites),
                "auto_composite": _mean([v[AUTO_COMPOSITE] for v in values if AUTO_COMPOSITE in v]),
                "scores": {
                    name: _mean([v[name] for v in values if name in v]) for name in score_names
                },
                "failed_cells": failed,
                "failure_rate": failed / len(group["cells"]),
                "latency_p50_s": _percentile(latencies, 50),
                "latency_p95_s": _percentile(latencies, 95),
                "tokens_per_s": (
                    sum(c.completion_tokens for c in produced) / generation_s
                    if generation_s
                    else None
                ),
            }
        )
    rows.sort(
        key=lambda r: (
            -(r["composite"] if r["composite"] is not None else -np.inf),
            -(r["auto_composite"] if r["auto_composite"] is not None else -np.inf),
            r["failure_rate"],
        )
    )
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its per-scorer means as top-level columns (tables, CSV, Prefect artifacts)."""
    flat = {key: value for key, value in row.items() if key != "scores"}
    flat.update({f"score_{name}": value for name, value in row["scores"].items()})
    return flat


def publish_leaderboard(run_id: str) -> list[dict[str, Any]]:
    """Compute the run's leaderboard, store it on the run, and log it to the MLflow parent run."""
    run = get_run(run_id)
    with session() as s:
        scores = list(s.exec(select(Score).where(Score.run_id == run.id)))
    rows = build_leaderboard(run_cells(run.id), run_candidates(run.id), scores)
    with session() as s:
        s.get(Run, run.id).leaderboard = rows
    if run.mlflow_run_id:
        best = rows[0] if rows else {}
        metrics = {
            "cells": float(run.n_cells),
            "failed_cells": float(sum(r["failed_cells"] for r in rows)),
        }
        if best.get("auto_composite") is not None:
            metrics["best_auto_composite"] = best["auto_composite"]
        tracking.finish_parent_run(
            tracking.tracking_uri(run.config.get("mlflow_url", "")),
            run.mlflow_run_id,
            "completed",
            metrics,
            rows,
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


COLUMNS = [
    ("rank", "#"),
    ("model", "model"),
    ("prompt", "prompt"),
    ("n_scenarios", "scenarios"),
    ("n_candidates", "candidates"),
    ("judged", "judged"),
    ("composite", "composite"),
    ("auto_composite", "auto composite"),
    ("failure_rate", "failure rate"),
    ("latency_p50_s", "latency p50 s"),
    ("tokens_per_s", "tokens/s"),
]


def table_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The columns people read, with one column per objective score."""
    names = sorted({name for row in rows for name in row["scores"]})
    return COLUMNS[:8] + [(f"score_{n}", n) for n in names] + COLUMNS[8:]


def table_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = table_columns(rows)
    flat = [flat_row(row) for row in rows]
    return [title for _, title in columns], [[_fmt(r.get(key)) for key, _ in columns] for r in flat]


def markdown(run_id: str, rows: list[dict[str, Any]]) -> str:
    header, body = table_cells(rows)
    lines = [
        f"# Benchmark run `{run_id}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in body),
    ]
    return "\n".join(lines)
