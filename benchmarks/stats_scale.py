"""Leaderboard statistics at scale: 10,000 cells × 5 candidates (1,000 bootstrap resamples per
(model, prompt) group), built from in-memory records as the compare step receives them.

    .venv/bin/python benchmarks/stats_scale.py [--cells 10000] [--candidates 5]
Prints the build time and the memory it allocated; writes benchmarks/results/stats_scale.json.
"""

import argparse
import json
import random
import time
import tracemalloc
from pathlib import Path

from benchlib.evaluation.leaderboard import build_leaderboard
from benchlib.spec.suite import load_suite
from benchlib.store.records import Candidate, Cell, Score

ROOT = Path(__file__).resolve().parent.parent


def records(n_cells: int, n_candidates: int) -> tuple[list, list, list]:
    rng = random.Random(0)
    models = [f"openai:model-{i}" for i in range(5)]
    prompts = [f"v{i}" for i in range(4)]
    cells, candidates, scores = [], [], []
    for i in range(n_cells):
        model, prompt = models[i % len(models)], prompts[(i // len(models)) % len(prompts)]
        cell = Cell(
            id=f"c{i}", run_id="r", index=i, model=model, prompt_version=prompt,
            prompt_hash="p", scenario_id=f"s{i // 20}", scenario_hash="s",
            rubric_version="tip-v1", rubric_hash="r", params={}, identity="x",
            scenario_vars={}, steps=["output"], status="completed",
        )  # fmt: skip
        cells.append(cell)
        for j in range(n_candidates):
            cid = len(candidates) + 1
            candidates.append(
                Candidate(
                    id=cid, run_id="r", cell_id=cell.id, index=j, seed=j, messages=[],
                    text="t", output_hash="h", latency_s=0.5, completion_tokens=30,
                )
            )  # fmt: skip
            for name in ("auto_composite", "format_ok", "schema_validity"):
                scores.append(
                    Score(run_id="r", cell_id=cell.id, candidate_id=cid, name=name,
                          value=rng.random(), version="t")
                )  # fmt: skip
    return cells, candidates, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=5)
    args = parser.parse_args()
    cells, candidates, scores = records(args.cells, args.candidates)
    rubric = load_suite(ROOT / "prompts" / "tips").rubric
    start = time.perf_counter()
    board = build_leaderboard(rubric, cells, candidates, scores, [], seed=1)
    elapsed = time.perf_counter() - start
    tracemalloc.start()  # a second build, traced: tracing slows it, so it is not the one timed
    build_leaderboard(rubric, cells, candidates, scores, [], seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = {
        "cells": args.cells,
        "candidates": len(candidates),
        "scores": len(scores),
        "groups": len(board.rows),
        "resamples": board.resamples,
        "seconds": round(elapsed, 3),
        "peak_alloc_mb": round(peak / 2**20, 1),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "stats_scale.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
