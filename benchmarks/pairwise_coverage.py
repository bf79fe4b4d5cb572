"""Coverage of the pairwise leaderboard's intervals (Bradley–Terry, percentile bootstrap over
scenarios), on simulated judges with a known truth.

Each simulation: K rows with true strengths spread evenly over [-1, 1]; S scenarios, each adding
its own per-row offset N(0, sd) (a prompt can suit one scenario more than another: that is why
scenarios are resampled whole); the pairs benchlib picks (a random cycle of the rows per
scenario); J judges each judging every pair (one in ten called a tie). Reported per setting: how
often the 95% interval of each row's strength holds the true (centred) strength, and how often
the fitted order is exactly the true order. Prints a table; writes
benchmarks/results/pairwise_coverage.json.
    .venv/bin/python benchmarks/pairwise_coverage.py [--sims 200] [--resamples 300]
"""

import argparse
import json
import time
from itertools import pairwise as consecutive
from pathlib import Path

import numpy as np

from benchlib.evaluation.pairwise import bootstrap_strengths, fit_strengths, interval_half_width
from benchlib.evaluation.stats import CONFIDENCE

RESULTS = Path(__file__).resolve().parent / "results"


def simulate(k: int, scenarios: int, judges: int, sd: float, resamples: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    true = np.linspace(1, -1, k)
    winners, losers, outcome, scenario_of = [], [], [], []
    for s in range(scenarios):
        local = true + rng.normal(0, sd, k)
        order = rng.permutation(k)
        edges = list(consecutive(order)) + ([(order[-1], order[0])] if k > 2 else [])
        for a, b in edges:
            for _ in range(judges):
                tie = rng.random() < 0.1
                a_wins = rng.random() < 1 / (1 + np.exp(-(local[a] - local[b])))
                winner, loser = (a, b) if a_wins else (b, a)
                winners.append(winner)
                losers.append(loser)
                outcome.append(0.5 if tie else 1.0)
                scenario_of.append(s)
    w, lo = np.array(winners), np.array(losers)
    y, sc = np.array(outcome), np.array(scenario_of)
    theta = fit_strengths(w, lo, y, np.ones(len(y)), k)
    samples = bootstrap_strengths(w, lo, y, sc, k, scenarios, seed, resamples)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    centred = true - true.mean()
    half = interval_half_width(samples, scenarios)
    return {
        "covered": ((low <= centred) & (centred <= high)).tolist(),
        "covered_t": ((theta - half <= centred) & (centred <= theta + half)).tolist(),
        "order_right": bool((np.argsort(-theta) == np.arange(k)).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=300)
    args = parser.parse_args()
    settings = [
        {"k": 3, "scenarios": 6, "judges": 3, "sd": 0.0},
        {"k": 3, "scenarios": 6, "judges": 3, "sd": 0.5},
        {"k": 3, "scenarios": 20, "judges": 1, "sd": 0.5},
        {"k": 5, "scenarios": 8, "judges": 2, "sd": 0.5},
        {"k": 5, "scenarios": 30, "judges": 1, "sd": 1.0},
    ]
    rows = []
    started = time.perf_counter()
    for setting in settings:
        found = [simulate(**setting, resamples=args.resamples, seed=i) for i in range(args.sims)]
        covered = np.array([f["covered"] for f in found])
        covered_t = np.array([f["covered_t"] for f in found])
        rows.append(
            setting
            | {
                "coverage": float(covered.mean()),
                "coverage_worst_row": float(covered.mean(axis=0).min()),
                "coverage_t": float(covered_t.mean()),
                "coverage_t_worst_row": float(covered_t.mean(axis=0).min()),
                "order_right": float(np.mean([f["order_right"] for f in found])),
            }
        )
    print(f"{args.sims} simulations per setting, {args.resamples} resamples each")
    print("K  scen judges sd   percentile (worst row)  t × bootstrap SE (worst row)  order right")
    for r in rows:
        print(
            f"{r['k']:<2} {r['scenarios']:<4} {r['judges']:<6} {r['sd']:<4} "
            f"{r['coverage']:.3f} ({r['coverage_worst_row']:.3f})          "
            f"{r['coverage_t']:.3f} ({r['coverage_t_worst_row']:.3f})                "
            f"{r['order_right']:.3f}"
        )
    RESULTS.mkdir(exist_ok=True)
    payload = {"sims": args.sims, "resamples": args.resamples, "rows": rows}
    payload["seconds"] = round(time.perf_counter() - started, 1)
    (RESULTS / "pairwise_coverage.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
