"""Does the verdict's 95% interval hold the truth 95% of the time? Simulated comparisons with a
known mean quality delta, on the grid's shape (3 prompt versions × N scenarios, one pair each):

    delta[prompt, scenario] = truth + prompt effect + scenario effect + cell noise

The scenario effect is shared by the three prompts' pairs of a scenario (a ticket the change
helps helps every prompt): pairs are correlated within a scenario, as in a real grid. It is
drawn normal, and left-skewed (a few scenarios break badly), the shape a regression takes.

Compared: today's method (percentile bootstrap over pairs, as if independent) and the interval
over per-scenario mean deltas by percentile bootstrap, BCa, Student's t and the
studentized bootstrap (bootstrap-t) — all through
benchlib.evaluation.stats.intervals, the code the verdict runs. For each: the coverage of the
truth; the false-accept rate (the verdict says acceptable although the truth is a regression 0.1
beyond the tolerance of 0.1); the false-reject rate (nothing changed, tolerance 0, yet rejected).
The method is chosen by coverage (target 93–97%): the clustered method whose coverage is
closest to 95% at its worst over both shapes from 8 scenarios up; the smallest size from which
it stays at or above 93% is the verdict's minimum number of scenarios.

    .venv/bin/python benchmarks/verdict_coverage.py [--reps 2000]

About 100 s of CPU (longer on a shared box). Writes benchmarks/results/verdict_coverage.json.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchlib.evaluation.stats import CONFIDENCE, N_RESAMPLES, intervals

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks/results/verdict_coverage.json"
SIZES = (4, 8, 12, 16, 24, 100)
TABLE_SIZES = (8, 24, 100)
PROMPT_EFFECTS = np.array([-0.1, 0.0, 0.1])
SCENARIO_SD = 0.3
CELL_SD = 0.15
TOLERANCE = 0.1
REGRESSION = -(TOLERANCE + 0.1)
METHODS = {
    "pairs, percentile (before)": ("pairs", "percentile"),
    "scenarios, percentile": ("scenarios", "percentile"),
    "scenarios, BCa": ("scenarios", "bca"),
    "scenarios, t": ("scenarios", "t"),
    "scenarios, bootstrap-t": ("scenarios", "bootstrap-t"),
}
CHUNK = 25


def simulate(
    rng: np.random.Generator, reps: int, n_scenarios: int, truth: float, shape: str
) -> np.ndarray:
    """reps × prompts × scenarios deltas."""
    if shape == "normal":
        scenario = rng.normal(0.0, SCENARIO_SD, (reps, 1, n_scenarios))
    else:
        scenario = -SCENARIO_SD * (rng.exponential(1.0, (reps, 1, n_scenarios)) - 1.0)
    noise = rng.normal(0.0, CELL_SD, (reps, len(PROMPT_EFFECTS), n_scenarios))
    return truth + PROMPT_EFFECTS[None, :, None] + scenario + noise


def verdicts(deltas: np.ndarray, unit: str, method: str, rng: np.random.Generator) -> np.ndarray:
    """reps × (low, high) of the overall interval, in chunks to bound the bootstrap's memory."""
    samples = deltas.reshape(deltas.shape[0], -1) if unit == "pairs" else deltas.mean(axis=1)
    out = []
    for start in range(0, samples.shape[0], CHUNK):
        _, low, high = intervals(samples[start : start + CHUNK], method, rng)  # type: ignore[arg-type]
        out.append(np.stack([low, high], axis=1))
    return np.concatenate(out)


def measure(reps: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for shape in ("normal", "skewed"):
        for n in SIZES:
            regression = simulate(rng, reps, n, REGRESSION, shape)
            unchanged = simulate(rng, reps, n, 0.0, shape)
            for name, (unit, method) in METHODS.items():
                bounds = verdicts(regression, unit, method, rng)
                covered = (bounds[:, 0] <= REGRESSION) & (bounds[:, 1] >= REGRESSION)
                null = verdicts(unchanged, unit, method, rng)
                rows.append(
                    {
                        "shape": shape,
                        "scenarios": n,
                        "method": name,
                        "coverage": float(covered.mean()),
                        "false_accept": float((bounds[:, 1] >= -TOLERANCE).mean()),
                        "false_reject": float((null[:, 1] < 0.0).mean()),
                        "mean_width": float((bounds[:, 1] - bounds[:, 0]).mean()),
                    }
                )
    return rows


def choose(rows: list[dict]) -> tuple[str, int]:
    """The clustered method closest to 95% at its worst from 8 scenarios up, and the smallest
    size from which its coverage stays ≥ 93% in both shapes."""

    def worst(method: str) -> float:
        return max(
            abs(r["coverage"] - CONFIDENCE)
            for r in rows
            if r["method"] == method and r["scenarios"] >= 8
        )

    chosen = min((m for m in METHODS if m.startswith("scenarios")), key=worst)
    low = [r["scenarios"] for r in rows if r["method"] == chosen and r["coverage"] < 0.93]
    minimum = min((n for n in SIZES if n > max(low, default=0)), default=max(SIZES))
    return chosen, minimum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="simulated comparisons per case")
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = measure(args.reps, args.seed)
    chosen, minimum = choose(rows)
    mc_error = float(np.sqrt(CONFIDENCE * (1 - CONFIDENCE) / args.reps))
    print(
        f"{args.reps} simulated comparisons per case, {N_RESAMPLES} resamples each; "
        f"Monte Carlo standard error of a 95% coverage: ±{mc_error:.1%}"
    )
    print(f"truth for coverage and false accepts: {REGRESSION:+.2f} (tolerance {TOLERANCE})")
    header = f"{'shape':7} {'scen.':>5}  {'method':28} {'coverage':>8} {'false acc.':>10} "
    print(header + f"{'false rej.':>10} {'width':>6}")
    for r in rows:
        print(
            f"{r['shape']:7} {r['scenarios']:5}  {r['method']:28} {r['coverage']:8.1%} "
            f"{r['false_accept']:10.1%} {r['false_reject']:10.1%} {r['mean_width']:6.3f}"
        )
    print(f"chosen: {chosen}; unreliable below {minimum} scenarios")
    result = {
        "reps": args.reps,
        "resamples": N_RESAMPLES,
        "confidence": CONFIDENCE,
        "seed": args.seed,
        "monte_carlo_se": mc_error,
        "model": {
            "prompts": len(PROMPT_EFFECTS),
            "prompt_effects": PROMPT_EFFECTS.tolist(),
            "scenario_sd": SCENARIO_SD,
            "cell_sd": CELL_SD,
            "tolerance": TOLERANCE,
            "regression": REGRESSION,
        },
        "table_sizes": list(TABLE_SIZES),
        "chosen": METHODS[chosen][1],
        "chosen_label": chosen,
        "min_scenarios": minimum,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
