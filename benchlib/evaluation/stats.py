"""Statistics for leaderboards and verdicts: seeded, vectorised bootstrap over scenarios, and
inter-judge agreement.

Scenarios are the unit of resampling: candidates of one scenario are not independent (same
prompt, same context), so a per-candidate bootstrap would be overconfident.
"""

from typing import Literal, NamedTuple

import krippendorff
import numpy as np
import scipy.stats

N_RESAMPLES = 1000
CONFIDENCE = 0.95

Method = Literal["percentile", "bca", "t", "bootstrap-t"]


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


def scenario_means(values: np.ndarray, scenarios: list[str]) -> np.ndarray:
    """The mean of `values` per scenario (in sorted scenario order): the resampling unit."""
    values = np.asarray(values, dtype=float)
    keys = sorted(set(scenarios))
    where = np.array([keys.index(s) for s in scenarios], dtype=int)
    return np.bincount(where, values, len(keys)) / np.bincount(where, minlength=len(keys))


def intervals(
    samples: np.ndarray,
    method: Method,
    rng: np.random.Generator,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, low and high of the interval of the mean of each row of `samples` (rows × values),
    vectorised over rows so the coverage benchmark measures this very code over thousands of
    simulated verdicts. NaN where a row has fewer than two values: one value has no spread to
    estimate, and an interval of width zero would look certain."""
    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    n = samples.shape[1]
    mean = samples.mean(axis=1)
    nan = np.full_like(mean, np.nan)
    if n < 2:
        return mean, nan, nan
    alpha = (1 - confidence) / 2
    if method == "t":
        half = scipy.stats.t.ppf(1 - alpha, n - 1) * samples.std(axis=1, ddof=1) / np.sqrt(n)
        return mean, mean - half, mean + half
    picks = rng.integers(0, n, size=(samples.shape[0], n_resamples, n))
    resampled = np.take_along_axis(samples[:, None, :], picks, axis=2)
    spread = samples.std(axis=1) > 0
    if method == "bootstrap-t":
        return (mean, *_studentized(samples, resampled, mean, spread, alpha))
    boot = np.sort(resampled.mean(axis=2), axis=1)
    levels = np.tile([alpha, 1 - alpha], (samples.shape[0], 1))
    if method == "bca":
        levels = _bca_levels(samples, boot, mean, levels)
    index = np.clip(np.floor(levels * (n_resamples - 1)).astype(int), 0, n_resamples - 1)
    bounds = np.take_along_axis(boot, index, axis=1)
    low = np.where(spread, bounds[:, 0], mean)
    high = np.where(spread, bounds[:, 1], mean)
    return mean, low, high


def _studentized(
    samples: np.ndarray, resampled: np.ndarray, mean: np.ndarray, spread: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap-t interval: quantiles of the resamples' t statistics, scaled by the
    sample's standard error. Resamples of one repeated value have no t and are left out."""
    n = samples.shape[1]
    se = samples.std(axis=1, ddof=1) / np.sqrt(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (resampled.mean(axis=2) - mean[:, None]) / (resampled.std(axis=2, ddof=1) / np.sqrt(n))
    t[~np.isfinite(t)] = np.nan
    t[~spread] = 0.0
    t_low, t_high = np.nanquantile(t, [alpha, 1 - alpha], axis=1)
    return mean - t_high * se, mean - t_low * se


def _bca_levels(
    samples: np.ndarray, boot: np.ndarray, mean: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """Efron's bias-corrected and accelerated percentiles; the mean's jackknife is closed form."""
    n = samples.shape[1]
    below = (boot < mean[:, None]).mean(axis=1)
    z0 = scipy.stats.norm.ppf(np.clip(below, 0.5 / boot.shape[1], 1 - 0.5 / boot.shape[1]))
    jack = (samples.sum(axis=1, keepdims=True) - samples) / (n - 1)
    d = jack.mean(axis=1, keepdims=True) - jack
    with np.errstate(invalid="ignore", divide="ignore"):
        accel = (d**3).sum(axis=1) / (6 * ((d**2).sum(axis=1)) ** 1.5)
    accel = np.nan_to_num(accel)
    z = scipy.stats.norm.ppf(levels)
    shifted = z0[:, None] + z
    return scipy.stats.norm.cdf(z0[:, None] + shifted / (1 - accel[:, None] * shifted))


def krippendorff_alpha(ratings: np.ndarray) -> float | None:
    """Alpha (interval metric) for a judges × items matrix with NaN where a judge did not rate;
    None when fewer than two judges rated any one item."""
    ratings = np.asarray(ratings, dtype=float)
    if ratings.shape[0] < 2 or not ((~np.isnan(ratings)).sum(axis=0) >= 2).any():
        return None
    if np.unique(ratings[~np.isnan(ratings)]).size < 2:
        return 1.0  # everyone gave the same score: perfect agreement (alpha is 0/0 here)
    return float(krippendorff.alpha(reliability_data=ratings, level_of_measurement="interval"))
