"""Summary statistics of timing samples (pure Python + numpy, no scipy on the nodes).

Definitions, chosen so every number can be checked by hand:

* percentiles are *nearest rank*: the value at 1-based rank ``ceil(p/100 * n)`` of the sorted
  samples (rank 1 for p = 0). Always a measured value, never an interpolation.
* ``median`` is the nearest-rank p50 (the lower median for even n), so the noise flag and the
  confidence interval talk about the same number the report shows.
* ``iqr`` is nearest-rank p75 - p25.
* ``stdev`` is the sample standard deviation (n - 1); 0 for a single sample.
* ``median_ci95`` is distribution-free: the order statistics ``[x_(l), x_(n+1-l)]`` with the
  largest ``l`` whose exact binomial coverage ``P(l <= B <= n-l)``, ``B ~ Bin(n, 1/2)``, is at
  least 95 %. With fewer than 6 samples no such interval exists and it is ``None``.
  ``median_ci_coverage`` gives the exact coverage of the interval reported.
* ``noisy`` when IQR / median > 0.10.
* ``ci95`` gives, for each of p50, p90, p95 and p99, the distribution-free 95 % interval of the
  true quantile ``q = p/100``: order statistics ``[x_(l), x_(u)]``, with ``B ~ Bin(n, q)`` the
  number of samples below the true quantile, ``l`` the largest rank with ``P(B <= l-1) <= 2.5 %``
  and ``u`` the smallest with ``P(B >= u) <= 2.5 %`` (equal tails, exact binomial, walked in log
  space). ``None`` when a tail cannot be closed with so few samples: p90 needs 36 samples,
  p95 72, p99 368.
  For p50 it is ``median_ci95``.
* ``valid`` says, per percentile, whether the run has MLPerf LoadGen's minimum query count for it
  (:func:`min_queries`): 11 for p50, 64 for p90, 130 for p95, 662 for p99.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
NOISE_THRESHOLD = 0.10
# LoadGen's early-stopping settings (loadgen/results.cc, PerformanceSummary::EarlyStopping):
# 99 % confidence, no tolerance, one query allowed above the estimate.
LOADGEN_CONFIDENCE = 0.99
LOADGEN_TOLERANCE = 0.0
LOADGEN_OVER = 1


def nearest_rank(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of already sorted values (0 <= p <= 100)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside [0, 100]")
    # Exact rational arithmetic: 0.29 * 100 is 28.999... in floats and would pick the wrong rank.
    rank = math.ceil(Fraction(str(p)) * n / 100)
    return sorted_values[max(rank, 1) - 1]


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int, float] | None:
    """1-based ranks ``(l, u)`` of the order-statistic interval for the median, and its coverage:
    the quantile interval at q = 1/2, where the tails are equal and ``u = n + 1 - l``."""
    return quantile_ci_ranks(n, 0.5, confidence)


@functools.lru_cache(maxsize=256)
def quantile_ci_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int, float] | None:
    """1-based ranks ``(l, u)`` of the distribution-free interval for the ``q`` quantile, and its
    exact coverage ``P(l <= B <= u-1)``, ``B ~ Bin(n, q)``; None if a tail cannot be closed.

    ``x_(l) <= xi_q`` exactly when at least ``l`` samples fall at or below ``xi_q`` and
    ``x_(u) >= xi_q`` when fewer than ``u`` do, so the interval misses with probability
    ``P(B <= l-1) + P(B >= u)``; each tail is kept under ``(1 - confidence) / 2``. The binomial
    pmf is built in log space (cumulative sums of log ratios), so 10^6 samples neither underflow
    nor overflow; the upper tail is summed from its own end so it keeps its relative precision.
    """
    if n < 1:
        raise ValueError("no samples")
    if not 0 < q < 1:
        raise ValueError(f"quantile {q} outside (0, 1)")
    alpha_half = (1 - confidence) / 2
    k = np.arange(n, dtype=np.float64)
    steps = np.log((n - k) / (k + 1)) + math.log(q / (1 - q))
    log_pmf = n * math.log1p(-q) + np.concatenate(([0.0], np.cumsum(steps)))
    pmf = np.exp(log_pmf)
    below = np.cumsum(pmf)                   # below[i] = P(B <= i)
    above = np.cumsum(pmf[::-1])[::-1]       # above[i] = P(B >= i)
    fits_low = np.nonzero(below[:n] <= alpha_half)[0]
    fits_high = np.nonzero(above[1:] <= alpha_half)[0]
    if len(fits_low) == 0 or len(fits_high) == 0:
        return None
    lower = int(fits_low[-1]) + 1            # P(B <= lower - 1) <= alpha/2, the largest such
    upper = int(fits_high[0]) + 1            # P(B >= upper) <= alpha/2, the smallest such
    coverage = 1.0 - float(below[lower - 1]) - float(above[upper])
    return lower, upper, coverage


@functools.lru_cache(maxsize=64)
def min_queries(p: float, confidence: float = LOADGEN_CONFIDENCE,
                tolerance: float = LOADGEN_TOLERANCE, over: int = LOADGEN_OVER) -> int:
    """MLPerf LoadGen's minimum query count for the ``p``-th percentile (0 < p < 100).

    LoadGen's early stopping (https://github.com/mlcommons/inference/blob/master/loadgen/
    early_stopping.cc, ``MinPassingQueriesFinder``, called from ``PerformanceSummary::
    EarlyStopping`` in loadgen/results.cc with confidence 0.99, tolerance 0 and t = 1) asks for
    the smallest ``h`` with ``P(Bin(h + t, 1 - q) <= t) < 1 - confidence``, ``q = p/100 - d``:
    the odds that ``h + t`` queries show at most ``t`` above the true percentile are below 1 %.
    It then needs ``h + t`` queries ("Processed at least h_min + 1 queries"). With t = 1 that is
    11 for p50, 64 for p90, 130 for p95 and 662 for p99.
    """
    q = p / 100 - tolerance
    if not 0 < q < 1:
        raise ValueError(f"percentile {p} outside (0, 100)")
    n = over + 1
    while True:
        # P(Bin(n, 1-q) <= over), summed in log space.
        odds = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                            + (n - i) * math.log(q) + i * math.log1p(-q))
                   for i in range(over + 1))
        if odds < 1 - confidence:
            return n
        n += 1


def summarize_ns(samples_ns: Sequence[int], duration_s: float | None = None) -> dict:
    """Stats object of docs/RESULTS.md, in milliseconds, from raw nanosecond samples."""
    if len(samples_ns) == 0:
        raise ValueError("no samples")
    ms = np.sort(np.asarray(samples_ns, dtype=np.float64)) / 1e6
    values = ms.tolist()
    n = len(values)
    median = nearest_rank(values, 50)
    iqr = nearest_rank(values, 75) - nearest_rank(values, 25)
    ci = median_ci_ranks(n)
    out = {
        "count": n,
        "duration_s": duration_s if duration_s is not None else float(ms.sum()) / 1e3,
        "min": values[0],
        "max": values[-1],
        "mean": float(ms.mean()),
        "stdev": float(ms.std(ddof=1)) if n > 1 else 0.0,
    }
    for p in PERCENTILES:
        out[f"p{p}"] = nearest_rank(values, p)
    out["iqr"] = iqr
    out["median_ci95"] = [values[ci[0] - 1], values[ci[1] - 1]] if ci else None
    out["median_ci_coverage"] = ci[2] if ci else None
    out["noisy"] = bool(median > 0 and iqr / median > NOISE_THRESHOLD)
    out["ci95"] = {}
    out["valid"] = {}
    for p in PERCENTILES:
        ranks = ci if p == 50 else quantile_ci_ranks(n, p / 100)
        out["ci95"][f"p{p}"] = [values[ranks[0] - 1], values[ranks[1] - 1]] if ranks else None
        out["valid"][f"p{p}"] = n >= min_queries(p)
    return out
