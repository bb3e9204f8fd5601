"""The knee search and the stability rule, on fake models whose answer is known."""

from __future__ import annotations

import heapq
import time

import numpy as np
import pytest

from servebench_engine.load.closedloop import closed_point
from servebench_engine.load.knee import judge, search
from servebench_engine.load.openloop import open_point
from servebench_engine.load.settings import LoadSettings
from servebench_engine.load.stability import Window, verdict

X = np.zeros((1, 3, 8, 8), np.float32)


def sleeper(seconds: float):
    def infer(_x):
        time.sleep(seconds)
    return infer


def mdc_p99_sojourn(rate: float, service: float, servers: int, n: int = 60_000) -> float:
    rng = np.random.default_rng(99)
    free, out = [0.0] * servers, np.empty(n)
    for i, a in enumerate(np.cumsum(rng.exponential(1 / rate, n)).tolist()):
        start = max(a, heapq.heappop(free))
        heapq.heappush(free, start + service)
        out[i] = start + service - a
    return float(np.percentile(out[2_000:], 99))


def mdc_knee(service: float, servers: int, bound_s: float) -> float:
    """The rate at which an M/D/c queue's p99 time in system reaches the bound (simulated)."""
    lo, hi = 0.3 * servers / service, 0.999 * servers / service
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mdc_p99_sojourn(mid, service, servers) <= bound_s else (lo, mid)
    return lo


def test_knee_of_fixed_service_model_matches_mdc():
    """Eight workers of 20 ms: capacity 400 req/s, and p99 climbs steeply near it (34 ms at
    rho 0.7, 73 ms at 0.9), so a 50 ms bound pins the knee (about rho 0.84) within a few per
    cent even from seconds of data. (One worker's p99 curve is too flat for that: a few
    seconds of M/D/1 put its knee anywhere in +-20 %.)"""
    service_s, servers, bound_ms = 0.020, 8, 50.0
    t0 = time.perf_counter()
    for _ in range(20):
        time.sleep(service_s)
    served = (time.perf_counter() - t0) / 20  # sleep() overshoots a little on a busy machine
    capacity = servers / served
    # The search is under test here, not the stability rule (test_drift_*): a loose p99
    # agreement keeps the machine's neighbours from turning good points unstable.
    settings = LoadSettings(warmup_s=0.3, window_s=1.0, window_min_queries=100, max_window_s=2.0,
                            max_windows=4, p99_tolerance=0.5, grace_s=0.3, p99_bound_ms=bound_ms,
                            knee_start_fraction=0.5, knee_low_fraction=0.25, knee_steps=4,
                            knee_resolution=0.05)
    infer = sleeper(service_s)
    knee = search(lambda rate: open_point([infer], X, rate, servers, settings).result,
                  capacity, settings)
    expected = mdc_knee(served, servers, bound_ms / 1e3)
    assert knee["found"] == "bisection", knee
    assert knee["knee_rps"] == pytest.approx(expected, rel=0.10), (
        f"knee {knee['knee_rps']} req/s, M/D/{servers} {expected:.1f} req/s (capacity "
        f"{capacity:.1f}); probes {[(p['rate_rps'], p['why']) for p in knee['probes']]}")
    # The overloaded top of the bracket never passes.
    assert not knee["probes"][1]["passed"]


def drifting(base_s: float, growth_per_s: float):
    """A model that gets slower the longer it runs (a leak, a thermal throttle)."""
    began: list[float] = []

    def infer(_x):
        now = time.perf_counter()
        if not began:
            began.append(now)
        time.sleep(base_s * (1 + growth_per_s * (now - began[0])))
    return infer


STABILITY = LoadSettings(warmup_s=0.2, window_s=0.6, window_min_queries=1, max_window_s=0.6,
                         stability_windows=3, max_windows=5)


def test_drift_marks_closed_loop_point_unstable():
    point = closed_point([drifting(0.004, 0.5)], X, 1, STABILITY)
    assert point["stable"] is False, point
    assert any("throughput" in r for r in point["reasons"]), point["reasons"]
    assert len(point["windows"]) == STABILITY.max_windows  # retried up to the cap


def test_steady_closed_loop_point_is_stable():
    """The rule is not 'everything is unstable': the same fake without drift settles."""
    point = closed_point([sleeper(0.004)], X, 1, STABILITY)
    assert point["stable"] is True, point


def test_drift_marks_open_loop_point_unstable_and_it_never_passes():
    settings = LoadSettings(warmup_s=0.2, window_s=0.6, window_min_queries=1, max_window_s=0.6,
                            max_windows=5, p99_bound_ms=1e6, min_queries_p99=1)
    point = open_point([drifting(0.004, 0.5)], X, 100.0, 1, settings).result
    assert point["stable"] is False, point
    ok, why = judge(point, settings)
    assert not ok and why.startswith("unstable"), why


def win(throughput: float, p99: float, arrivals: int | None = None) -> Window:
    n = int(throughput)
    return Window(0.0, 1.0, n if arrivals is None else arrivals, n, p99 / 2, p99)


@pytest.mark.parametrize("windows, open_loop, stable", [
    ([win(100, 10), win(104, 11), win(98, 10.5)], False, True),
    ([win(100, 10), win(90, 10), win(75, 10)], False, False),      # throughput falls
    ([win(100, 10), win(100, 13), win(100, 17)], False, False),    # p99 climbs
    ([win(100, 10, 100), win(99, 11, 102), win(101, 10, 97)], True, True),
    ([win(70, 10, 100), win(70, 11, 100), win(70, 10, 100)], True, False),  # not keeping up
    ([win(100, 10), win(100, 10)], False, False),                  # too few windows
])
def test_stability_rule(windows, open_loop, stable):
    assert verdict(windows, 3, 0.10, 0.20, open_loop)["stable"] is stable


def test_unstable_point_never_passes_even_under_the_bound():
    settings = LoadSettings(p99_bound_ms=50.0, min_queries_p99=10)
    point = {"stable": False, "reasons": ["p99 differs"], "unfinished": 0,
             "latency_ms": {"count": 1000, "p99": 5.0}}
    assert judge(point, settings)[0] is False
    assert judge({**point, "stable": True}, settings)[0] is True
    assert judge({**point, "stable": True, "latency_ms": {"count": 9, "p99": 5.0}},
                 settings)[0] is False


def test_search_bisects_a_known_step():
    """A monotone fake 'measure' with its edge at 137 req/s: the search brackets it."""
    settings = LoadSettings(p99_bound_ms=10.0, knee_steps=10, knee_resolution=0.01,
                            min_queries_p99=1)

    def measure(rate):
        return {"stable": True, "unfinished": 0, "offered_rps": rate,
                "latency_ms": {"count": 1000, "p99": 5.0 if rate <= 137 else 50.0}}

    knee = search(measure, 200.0, settings)
    assert 137 * 0.98 <= knee["knee_rps"] <= 137
    assert knee["first_failing_rps"] > 137
    assert len(knee["probes"]) <= 2 + settings.knee_steps


def step_at(edge: float):
    def measure(rate):
        return {"stable": True, "unfinished": 0, "offered_rps": rate,
                "latency_ms": {"count": 1000, "p99": 5.0 if rate <= edge else 50.0}}
    return measure


def test_search_brackets_downwards_to_a_low_knee():
    settings = LoadSettings(p99_bound_ms=10.0, knee_steps=10, knee_resolution=0.01,
                            min_queries_p99=1)
    knee = search(step_at(30.0), 200.0, settings)
    rates = [p["rate_rps"] for p in knee["probes"]]
    assert rates[:3] == [100.0, 50.0, 25.0], rates  # halved from the start, top never probed
    assert 30 * 0.98 <= knee["knee_rps"] <= 30


def test_search_gives_none_below_its_floor():
    settings = LoadSettings(p99_bound_ms=10.0, min_queries_p99=1, knee_low_fraction=0.1)
    knee = search(step_at(5.0), 200.0, settings)
    assert knee["knee_rps"] is None and knee["found"].startswith("below the bracket")
    assert min(p["rate_rps"] for p in knee["probes"]) >= 20.0 * 0.99
