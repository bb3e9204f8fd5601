"""The open-loop harness against queueing theory: a fake model with a fixed service time
(time.sleep, so other processes on the machine barely change it) under seeded Poisson
arrivals must give the mean waiting times of M/D/1 and M/D/2.

A single sample path of a few thousand arrivals is itself 5-12 % away from the long-run mean
at these utilisations (simulated: the standard deviation of the mean wait over 40 seeds is
7 % at rho 0.5 and 3,000 arrivals, 12 % at rho 0.8), more than the harness's error we want to
see, and a path long enough to average that out would take minutes. So each test takes the first seed whose own path (the exact FCFS recursion on those
arrival times) is within 3 % of the theory, and says so; what remains is the harness's error.
"""

from __future__ import annotations

import heapq
import threading
import time

import numpy as np
import pytest

from servebench_engine.load.openloop import open_point, poisson_offsets, window_length
from servebench_engine.load.settings import LoadSettings

# 16 ms: the harness's own delay per request (a worker's wake-up at the scheduled time; measured
# 0.07 ms on a quiet machine, 0.3-0.5 ms with load average 6-9 on these 2 cores) must stay a few
# per cent of the shortest mean wait (8 ms at rho 0.5), or the test would measure the neighbours.
SERVICE_S = 0.016
X = np.zeros((1, 3, 8, 8), np.float32)


def sleeper(seconds: float):
    def infer(_x):
        time.sleep(seconds)
    return infer


def fcfs_waits(arrivals_s: np.ndarray, services_s, servers: int) -> np.ndarray:
    """Waiting times of a FCFS queue with ``servers`` servers (Kiefer-Wolfowitz recursion)."""
    free = [0.0] * servers
    out = np.empty(len(arrivals_s))
    services = np.broadcast_to(services_s, arrivals_s.shape)
    for i, (a, s) in enumerate(zip(arrivals_s.tolist(), services.tolist())):
        f = heapq.heappop(free)
        start = a if a > f else f
        out[i] = start - a
        heapq.heappush(free, start + s)
    return out


def md1_wait(rho: float, service: float) -> float:
    return rho * service / (2 * (1 - rho))


def md2_wait(rate: float, service: float) -> float:
    """M/D/2 has no short closed form: the long-run mean of a 300,000-arrival simulation."""
    rng = np.random.default_rng(123_456)
    arrivals = np.cumsum(rng.exponential(1 / rate, 300_000))
    return float(fcfs_waits(arrivals, service, 2)[10_000:].mean())


def settings_for(rate: float, requests: int, seed: int) -> LoadSettings:
    """Three windows over the whole stream, no warm-up (the queue starts empty, as in the
    recursion), nothing stops it early: every request is counted."""
    window = requests / rate / 3
    return LoadSettings(warmup_s=0.0, window_s=window, max_window_s=window, window_min_queries=1,
                        stability_windows=3, max_windows=3, seed=seed, grace_s=2.0)


def representative_seed(rate: float, requests: int, servers: int, service: float,
                        theory) -> int:
    for seed in range(200):
        s = settings_for(rate, requests, seed)
        duration = s.warmup_s + s.max_windows * window_length(rate, s)
        offsets = poisson_offsets(rate, duration, np.random.default_rng(seed),
                                  s.max_requests_per_point)
        path = fcfs_waits(offsets / 1e9, service, servers).mean()
        if abs(path / theory(rate, service) - 1) <= 0.03:
            return seed
    raise AssertionError("no seed in 200 gives a path within 3 % of the theory")


def calibrated_service() -> float:
    """What time.sleep(SERVICE_S) really takes here now (it overshoots by 1-4 % on a busy
    machine): the arrival rate is set from it, so the utilisation is the one asked for."""
    t0 = time.perf_counter()
    for _ in range(40):
        time.sleep(SERVICE_S)
    return (time.perf_counter() - t0) / 40


def run_queue(rho: float, servers: int, requests: int, theory):
    service = calibrated_service()
    rate = servers * rho / service
    seed = representative_seed(rate, requests, servers, service, theory)
    point = open_point([sleeper(SERVICE_S)], X, rate, servers, settings_for(rate, requests, seed))
    result = point.result
    assert result["unfinished"] == 0 and result["arrivals"] == len(point.stream.offsets)
    served = result["service_ms"]["mean"] / 1e3  # sleep() overshoots a little: use what ran
    waited = result["wait_ms"]["mean"] / 1e3
    expected = theory(rate, served)
    # The strongest check: the exact FCFS recursion on the same arrivals and the service times
    # each request really had. Only the harness's own delays stand between the two.
    stream = point.stream
    ideal = fcfs_waits(stream.offsets / 1e9, (stream.done - stream.started) / 1e9, servers).mean()
    return waited, expected, ideal, served


@pytest.mark.parametrize("rho, requests", [(0.5, 800), (0.8, 1200)])
def test_single_worker_waits_like_md1(rho, requests):
    waited, expected, ideal, served = run_queue(
        rho, 1, requests, lambda rate, s: md1_wait(rate * s, s))
    assert waited == pytest.approx(expected, rel=0.10), (
        f"rho {rho}: mean wait {waited * 1e3:.3f} ms, M/D/1 {expected * 1e3:.3f} ms "
        f"(service {served * 1e3:.3f} ms)")
    assert waited == pytest.approx(ideal, rel=0.10), (
        f"mean wait {waited * 1e3:.3f} ms, FCFS recursion on the same path {ideal * 1e3:.3f} ms")


def test_two_workers_wait_like_md2():
    waited, expected, ideal, served = run_queue(0.8, 2, 2400, md2_wait)
    assert waited == pytest.approx(expected, rel=0.10), (
        f"mean wait {waited * 1e3:.3f} ms, M/D/2 {expected * 1e3:.3f} ms "
        f"(service {served * 1e3:.3f} ms)")
    assert waited == pytest.approx(ideal, rel=0.10)


def test_worker_count_is_honoured_and_threads_end():
    """Two workers at the same arrival rate cut the wait many times over (M/D/1 at rho 0.8:
    2 S; M/D/2 at rho 0.4: a few per cent of S), and no worker thread outlives its point."""
    threads_before = threading.active_count()
    rate = 0.8 / SERVICE_S
    s = settings_for(rate, 200, 1)
    one = open_point([sleeper(SERVICE_S)], X, rate, 1, s).result["wait_ms"]["mean"]
    two = open_point([sleeper(SERVICE_S)], X, rate, 2, s).result["wait_ms"]["mean"]
    assert two < one / 3, f"mean wait {one} ms with one worker, {two} ms with two"
    assert threading.active_count() <= threads_before, "worker threads left running"
