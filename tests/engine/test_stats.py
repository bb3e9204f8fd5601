"""The statistics against samples whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest

from servebench_engine.stats import median_ci_ranks, nearest_rank, summarize_ns


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
