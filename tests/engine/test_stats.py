"""The statistics against samples whose answers are worked out by hand."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from servebench_engine.stats import (median_ci_ranks, min_queries, nearest_rank, quantile_ci_ranks,
                                     summarize_ns)


def ms_to_ns(values):
    return [int(v * 1_000_000) for v in values]


def test_one_to_hundred():
    s = summarize_ns(ms_to_ns(range(1, 101)))
    assert (s["count"], s["min"], s["max"]) == (100, 1.0, 100.0)
    # Nearest rank: rank ceil(p/100 * 100) = p.
    assert (s["p50"], s["p90"], s["p95"], s["p99"]) == (50.0, 90.0, 95.0, 99.0)
    assert s["mean"] == pytest.approx(50.5)
    # Sample stdev of 1..n is sqrt(n(n+1)/12) = sqrt(841.666...).
    assert s["stdev"] == pytest.approx(math.sqrt(100 * 101 / 12))
    assert s["iqr"] == 75.0 - 25.0
    # The textbook n = 100 interval: 40th and 61st order statistics, coverage 1 - 2 P(B <= 39).
    assert s["median_ci95"] == [40.0, 61.0]
    tail = sum(math.comb(100, i) for i in range(40)) / 2**100
    assert s["median_ci_coverage"] == pytest.approx(1 - 2 * tail, abs=1e-12)
    assert s["median_ci_coverage"] == pytest.approx(0.9648, abs=1e-4)
    assert s["noisy"] is True  # IQR 50 over median 50


def test_small_odd_sample_unsorted():
    s = summarize_ns(ms_to_ns([5, 1, 4, 2, 3]))
    # ranks: p50 ceil(2.5)=3, p90 ceil(4.5)=5, p25 ceil(1.25)=2, p75 ceil(3.75)=4
    assert (s["p50"], s["p90"], s["p99"]) == (3.0, 5.0, 5.0)
    assert s["iqr"] == 2.0
    assert s["stdev"] == pytest.approx(math.sqrt(2.5))
    # Five samples cannot give 95 %: even [min, max] covers 1 - 2/32 = 93.75 %.
    assert s["median_ci95"] is None and s["median_ci_coverage"] is None


def test_small_even_sample_takes_lower_median():
    s = summarize_ns(ms_to_ns([40, 10, 30, 20]))
    assert s["p50"] == 20.0     # rank ceil(2) = 2, not the interpolated 25
    assert s["p90"] == 40.0     # rank ceil(3.6) = 4
    assert s["iqr"] == 30.0 - 10.0


def test_single_sample():
    s = summarize_ns([7_000_000])
    assert all(s[k] == 7.0 for k in ("min", "max", "mean", "p50", "p90", "p95", "p99"))
    assert s["stdev"] == 0.0 and s["iqr"] == 0.0
    assert s["median_ci95"] is None
    assert s["noisy"] is False


def test_nanoseconds_become_milliseconds_and_duration_kept():
    s = summarize_ns([1_000_000, 2_000_000, 3_000_000], duration_s=0.5)
    assert s["p50"] == 2.0 and s["duration_s"] == 0.5
    assert summarize_ns([1_000_000, 3_000_000])["duration_s"] == pytest.approx(0.004)


def test_rank_arithmetic_is_exact():
    values = list(range(1, 101))
    # In floats 7/100*100 is 7.000000000000001, whose ceiling would be rank 8.
    assert nearest_rank(values, 7) == 7
    assert nearest_rank(values, 57) == 57
    assert nearest_rank(values, 0) == 1
    assert nearest_rank(values, 100) == 100
    with pytest.raises(ValueError):
        nearest_rank([], 50)
    with pytest.raises(ValueError):
        nearest_rank(values, 101)


@pytest.mark.parametrize("n, expected", [
    (6, (1, 6, 1 - 2 / 64)),           # P(B <= 0) = 1/64 fits under 2.5 %, P(B <= 1) = 7/64 not
    (10, (2, 9, 1 - 2 * 11 / 1024)),   # P(B <= 1) = 11/1024; P(B <= 2) = 56/1024 too much
    (5, None),
    (1, None),
])
def test_median_ci_ranks_small_n(n, expected):
    got = median_ci_ranks(n)
    if expected is None:
        assert got is None
    else:
        assert got[:2] == expected[:2]
        assert got[2] == pytest.approx(expected[2], abs=1e-12)


def test_median_ci_ranks_large_n_matches_normal_approximation():
    n = 100_000
    low, high, coverage = median_ci_ranks(n)
    # Normal approximation: n/2 -+ 1.96 sqrt(n)/2, i.e. about 49690 and 50311.
    assert abs(low - (n / 2 - 1.96 * math.sqrt(n) / 2)) < 3
    assert high == n + 1 - low
    assert 0.95 <= coverage < 0.952


@pytest.mark.parametrize("high, noisy", [(111, True), (109, False)])
def test_noise_flag_threshold(high, noisy):
    # p25 = 100, p50 = 100 (rank 4 of 8), p75 = ``high``: IQR/median = 0.11 or 0.09.
    s = summarize_ns(ms_to_ns([100] * 4 + [high] * 4))
    assert s["iqr"] == pytest.approx(high - 100)
    assert s["noisy"] is noisy


# ---- percentile intervals and validity (issue 12) -------------------------------------------

def _exact_tails(n: int, q: Fraction, lower: int, upper: int) -> tuple[Fraction, Fraction]:
    """P(B <= lower-1) and P(B >= upper), B ~ Bin(n, q), in exact rationals."""
    pmf = [math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(n + 1)]
    return sum(pmf[:lower]), sum(pmf[upper:])


@pytest.mark.parametrize("n, p", [(40, 90), (100, 90), (100, 95), (400, 99), (700, 99),
                                  (250, 50)])
def test_quantile_ci_ranks_are_the_tightest_exact_binomial_ranks(n, p):
    q = Fraction(p, 100)
    lower, upper, coverage = quantile_ci_ranks(n, p / 100)
    low_tail, high_tail = _exact_tails(n, q, lower, upper)
    alpha_half = Fraction(1, 40)
    assert low_tail <= alpha_half and high_tail <= alpha_half
    # One rank tighter on either side would break its tail.
    assert _exact_tails(n, q, lower + 1, upper)[0] > alpha_half
    assert _exact_tails(n, q, lower, upper - 1)[1] > alpha_half
    assert coverage == pytest.approx(float(1 - low_tail - high_tail), abs=1e-9)
    assert lower <= math.ceil(q * n) <= upper


def test_quantile_ci_is_the_median_ci_at_one_half():
    for n in (6, 10, 101, 5000):
        assert quantile_ci_ranks(n, 0.5)[:2] == median_ci_ranks(n)[:2]


@pytest.mark.parametrize("n, p, has", [(35, 90, False), (36, 90, True), (71, 95, False),
                                       (72, 95, True), (367, 99, False), (368, 99, True)])
def test_too_few_samples_give_no_interval(n, p, has):
    # The upper rank needs P(B = n) = q^n <= 2.5 %: 0.99^367 = 0.0250..., 0.99^368 = 0.0247...
    assert (quantile_ci_ranks(n, p / 100) is not None) is has


def test_large_n_stays_finite_and_near_the_normal_approximation():
    n, q = 1_000_000, 0.99
    lower, upper, coverage = quantile_ci_ranks(n, q)
    half = 1.96 * math.sqrt(n * q * (1 - q))
    assert abs(lower - (n * q - half)) < 3 and abs(upper - (n * q + half)) < 3
    assert 0.95 <= coverage < 0.951


def test_min_queries_is_mlperf_loadgen_rule():
    # The figure: p99 needs 662 queries at 99 % confidence; LoadGen's logs read
    # "Processed at least 64 queries" for its p90 SingleStream early stopping.
    assert [min_queries(p) for p in (50, 90, 95, 99)] == [11, 64, 130, 662]
    # The rule itself: P(Bin(n, 1-q) <= 1) < 1 %, first at n.
    for p, n in ((90, 64), (99, 662)):
        q = Fraction(p, 100)

        def odds(m):
            return q**m + m * (1 - q) * q ** (m - 1)

        assert odds(n) < Fraction(1, 100) <= odds(n - 1)


def test_stats_carry_ci95_and_valid_per_percentile():
    s = summarize_ns(ms_to_ns(range(1, 101)))
    assert s["ci95"]["p50"] == s["median_ci95"] == [40.0, 61.0]
    assert s["ci95"]["p90"] == [84.0, 96.0]        # the ranks checked exactly above
    assert s["ci95"]["p99"] is None                 # 100 samples cannot bound the p99
    assert s["valid"] == {"p50": True, "p90": True, "p95": False, "p99": False}
    assert summarize_ns([1] * 662)["valid"]["p99"] is True
    assert summarize_ns([1] * 661)["valid"]["p99"] is False


def test_p99_interval_covers_the_true_p99_at_least_at_its_nominal_rate():
    """Monte-Carlo: 2,000 seeded samples of n = 1,000 from Exp(1) (true p99 = ln 100) and 1,000 of
    n = 700 from a lognormal (true p99 = exp(sigma z_0.99)). The exact coverage of the ranks is
    >= 95 %; the observed rate may fall short of it only by Monte-Carlo error: 3.5 standard
    errors, sqrt(0.95 * 0.05 / trials) (a false alarm rate under 0.03 %)."""
    rng = np.random.default_rng(20261202)
    trials, n = 2000, 1000
    lower, upper, exact = quantile_ci_ranks(n, 0.99)
    draws = np.sort(rng.exponential(1.0, (trials, n)), axis=1)
    true = math.log(100)
    covered = np.mean((draws[:, lower - 1] <= true) & (draws[:, upper - 1] >= true))
    bound = 3.5 * math.sqrt(0.95 * 0.05 / trials)
    print(f"exponential n={n}: observed p99 coverage {covered:.4f}, exact {exact:.4f}")
    assert exact >= 0.95
    assert covered >= 0.95 - bound
    assert abs(covered - exact) <= 3.5 * math.sqrt(exact * (1 - exact) / trials)

    # The same through summarize_ns, the code path the engine uses (ns in, ms out).
    sigma, trials, n = 0.5, 1000, 700
    true_ms = math.exp(sigma * 2.3263478740408408)    # z_0.99
    hits = 0
    for _ in range(trials):
        ns = (rng.lognormal(0.0, sigma, n) * 1e6).astype(np.int64)
        lo, hi = summarize_ns(ns)["ci95"]["p99"]
        hits += lo <= true_ms <= hi
    covered = hits / trials
    print(f"lognormal n={n}: observed p99 coverage {covered:.4f}")
    assert covered >= 0.95 - 3.5 * math.sqrt(0.95 * 0.05 / trials)
