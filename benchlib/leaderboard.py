"""The leaderboard: one row per (model, prompt version), best first, saying how sure it is.

The ranking metric is the rubric composite once anything is judged, else its automatic part
(the rubric's weights on the flags scorers compute). Each row's mean comes with a 95% bootstrap
interval over scenarios; a row whose paired difference to the leader (over the scenarios both
ran) is not clearly above zero is marked tied with the leader.
"""

from collections import defaultdict
from typing import Any

import numpy as np

from benchlib.records import Candidate, Cell, CellStatus, Judgement, Score
from benchlib.rubric import Rubric
from benchlib.scoring import AUTO_COMPOSITE, COMPOSITE
from benchlib.stats import CONFIDENCE, N_RESAMPLES, bootstrap_mean, krippendorff_alpha


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else value


def agreement(rubric: Rubric, judgements: list[Judgement]) -> dict[str, float | None]:
    """Krippendorff's alpha per criterion, over outputs judged by several people."""
    judges = sorted({j.judge for j in judgements})
    items = sorted({j.candidate_id for j in judgements})
    result = {}
    for criterion in rubric.criteria:
        matrix = np.full((len(judges), len(items)), np.nan)
        for j in judgements:
            if criterion.name in j.scores:
                matrix[judges.index(j.judge), items.index(j.candidate_id)] = j.scores[
                    criterion.name
                ]
        result[criterion.name] = krippendorff_alpha(matrix)
    return result


def build_leaderboard(
    rubric: Rubric,
    cells: list[Cell],
    candidates: list[Candidate],
    scores: list[Score],
    judgements: list[Judgement],
    seed: int,
) -> dict[str, Any]:
    by_candidate: dict[int, dict[str, float]] = defaultdict(dict)
    for score in scores:
        by_candidate[score.candidate_id][score.name] = score.value
    metric = COMPOSITE if any(s.name == COMPOSITE for s in scores) else AUTO_COMPOSITE
    criteria = [c.name for c in rubric.criteria]
    judged_items = {j.candidate_id for j in judgements}

    cell_of = {cell.id: cell for cell in cells}
    groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.model, cell.prompt_version)].append(cell)
    cands_of: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        cell = cell_of[candidate.cell_id]
        cands_of[(cell.model, cell.prompt_version)].append(candidate)

    rows, per_scenario = [], {}
    for key, group_cells in groups.items():
        cands = cands_of[key]
        values = [by_candidate.get(c.id, {}) for c in cands]
        by_scenario: dict[str, list[float]] = defaultdict(list)
        for candidate, value in zip(cands, values, strict=True):
            if metric in value:
                by_scenario[cell_of[candidate.cell_id].scenario_id].append(value[metric])
        per_scenario[key] = {s: float(np.mean(v)) for s, v in by_scenario.items()}
        interval = bootstrap_mean(np.array(list(per_scenario[key].values())), seed)
        produced = [c for c in cands if c.error is None]
        live = [c for c in produced if not c.cached]  # a cached output's latency is not ours
        latencies = [c.latency_s for c in live]
        failed = sum(cell.status == CellStatus.failed for cell in group_cells)
        other = sorted({n for v in values for n in v} - {COMPOSITE, AUTO_COMPOSITE, *criteria})
        rows.append(
            {
                "model": key[0],
                "prompt": key[1],
                "n_scenarios": len({cell.scenario_id for cell in group_cells}),
                "n_cells": len(group_cells),
                "n_candidates": len(cands),
                "judge_coverage": (
                    sum(c.id in judged_items for c in cands) / len(cands) if cands else 0.0
                ),
                "metric": metric,
                "mean": _finite(interval.mean),
                "ci_low": _finite(interval.low),
                "ci_high": _finite(interval.high),
                "composite": _mean([v[COMPOSITE] for v in values if COMPOSITE in v]),
                "auto_composite": _mean([v[AUTO_COMPOSITE] for v in values if AUTO_COMPOSITE in v]),
                "criteria": {n: _mean([v[n] for v in values if n in v]) for n in criteria},
                "scores": {n: _mean([v[n] for v in values if n in v]) for n in other},
                "failed_cells": failed,
                "failure_rate": failed / len(group_cells),
                "latency_p50_s": _percentile(latencies, 50),
                "latency_p95_s": _percentile(latencies, 95),
                "tokens_per_s": (
                    sum(c.completion_tokens for c in live) / sum(latencies)
                    if sum(latencies)
                    else None
                ),
                "cached_outputs": len(produced) - len(live),
            }
        )
    rows.sort(key=lambda r: (r["mean"] is None, -(r["mean"] or 0.0), r["failure_rate"]))
    _mark_ties(rows, per_scenario, seed)
    return {
        "metric": metric,
        "confidence": CONFIDENCE,
        "resamples": N_RESAMPLES,
        "seed": seed,
        "rows": rows,
        "agreement": agreement(rubric, judgements),
    }


def _mark_ties(
    rows: list[dict[str, Any]], per_scenario: dict[tuple[str, str], dict[str, float]], seed: int
) -> None:
    """Rank rows; a row is tied with the leader when the paired interval of (leader − row)
    over shared scenarios reaches down to zero."""
    leader = per_scenario[(rows[0]["model"], rows[0]["prompt"])] if rows else {}
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
        mine = per_scenario[(row["model"], row["prompt"])]
        shared = sorted(leader.keys() & mine.keys())
        if rank == 1 or not shared:
            row["tied_with_leader"] = False
            continue
        diffs = np.array([leader[s] - mine[s] for s in shared])
        row["tied_with_leader"] = bool(bootstrap_mean(diffs, seed).low <= 0.0)


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with nested means as top-level columns (tables, CSV, Prefect artifacts)."""
    flat = {key: value for key, value in row.items() if key not in ("scores", "criteria")}
    flat.update(row["criteria"])
    flat.update({f"score_{name}": value for name, value in row["scores"].items()})
    return flat


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def table_cells(board: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and body of the table people read: rank (≈ when tied with the leader), the
    ranking metric with its interval, then criteria, objective scores and costs."""
    rows = board["rows"]
    criteria = sorted({n for row in rows for n, v in row["criteria"].items() if v is not None})
    scores = sorted({name for row in rows for name in row["scores"]})
    header = ["#", "model", "prompt", "scen.", "outputs", "judged", board["metric"]]
    header += ["95% CI", *criteria, *scores, "fail rate", "p50 s", "tok/s", "cached"]
    body = []
    for row in rows:
        interval = f"{row['ci_low']:.2f}…{row['ci_high']:.2f}" if row["ci_low"] is not None else "—"
        body.append(
            [
                f"≈{row['rank']}" if row["tied_with_leader"] else str(row["rank"]),
                row["model"],
                row["prompt"],
                str(row["n_scenarios"]),
                str(row["n_candidates"]),
                f"{row['judge_coverage']:.0%}",
                _fmt(row["mean"]),
                interval,
                *(_fmt(row["criteria"].get(n)) for n in criteria),
                *(_fmt(row["scores"][n]) for n in scores),
                _fmt(row["failure_rate"]),
                _fmt(row["latency_p50_s"]),
                _fmt(row["tokens_per_s"]),
                str(row.get("cached_outputs", 0)),
            ]
        )
    return header, body


def markdown(run_id: str, board: dict[str, Any]) -> str:
    header, body = table_cells(board)
    lines = [
        f"# Benchmark run `{run_id}`",
        "",
        f"Ranked by `{board['metric']}`; ≈ marks rows tied with the leader (paired bootstrap, "
        f"{board['confidence']:.0%}).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in body),
    ]
    return "\n".join(lines)
