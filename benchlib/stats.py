"""Statistics for leaderboards and verdicts: seeded, vectorised bootstrap over scenarios, and
inter-judge agreement.

Scenarios are the unit of resampling: candidates of one scenario are not independent (same
prompt, same context), so a per-candidate bootstrap would be overconfident.
"""

from typing import NamedTuple

import krippendorff
import numpy as np

N_RESAMPLES = 1000
CONFIDENCE = 0.95


class Interval(NamedTuple):
    mean: float
    low: float
    high: float


def bootstrap_mean(
    values: np.ndarray, seed: int, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE
) -> Interval:
    """Percentile bootstrap interval of the mean of `values` (one value per scenario)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return Interval(np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def krippendorff_alpha(ratings: np.ndarray) -> float | None:
    """Alpha (interval metric) for a judges × items matrix with NaN where a judge did not rate;
    None when fewer than two judges rated any one item."""
    ratings = np.asarray(ratings, dtype=float)
    if ratings.shape[0] < 2 or not ((~np.isnan(ratings)).sum(axis=0) >= 2).any():
        return None
    if np.unique(ratings[~np.isnan(ratings)]).size < 2:
        return 1.0  # everyone gave the same score: perfect agreement (alpha is 0/0 here)
    return float(krippendorff.alpha(reliability_data=ratings, level_of_measurement="interval"))
