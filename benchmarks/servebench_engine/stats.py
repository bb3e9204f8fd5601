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
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
NOISE_THRESHOLD = 0.10


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
    """1-based ranks ``(l, u)`` of the order-statistic interval for the median, and its coverage.

    Walks the Bin(n, 1/2) distribution in log space so large n (10^5 samples) neither
    underflows nor overflows.
    """
    if n < 1:
        raise ValueError("no samples")
    alpha_half = (1 - confidence) / 2
    log_pmf = -n * math.log(2)  # P(B = 0)
    cdf = 0.0  # P(B <= i - 1) before adding term i
    lower = 0  # the number of terms in the lower tail that fit under alpha/2
    tail = 0.0
    for i in range(n // 2 + 1):
        if cdf + math.exp(log_pmf) > alpha_half:
            break
        cdf += math.exp(log_pmf)
        lower = i + 1
        tail = cdf
        log_pmf += math.log((n - i) / (i + 1))
    if lower == 0:
        return None
    # [x_(l), x_(n+1-l)] misses the median when B <= l-1 or B >= n-l+1: twice the tail.
    return lower, n + 1 - lower, 1 - 2 * tail


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
    return out
