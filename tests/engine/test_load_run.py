"""run_load end to end on fake models: one JSON-able dict with every part, in bounded time."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from servebench_engine.load import for_profile, run_load

X = np.zeros((1, 3, 8, 8), np.float32)


def test_run_load_on_a_fake_model_gives_every_part():
    made = []

    def factory(threads):
        made.append(threads)

        def infer(_x):
            time.sleep(0.004)
        return infer

    began = time.monotonic()
    result = run_load(factory, X, for_profile("smoke"), cpus=2)
    assert time.monotonic() - began < 30
    json.dumps(result)  # JSON-able as it is
    assert made == [2, 1, 1]  # one 2-thread session, then two 1-thread sessions
    layouts = {(p["layout"]["sessions"], p["concurrency"]) for p in result["closed_loop"]["points"]}
    assert layouts == {(1, 1), (1, 2), (2, 1), (2, 2)}
    # Sleeping requests overlap: two in flight serve about twice what one does.
    best = result["best_closed_loop_rps"]
    assert 1.5 * 250 * 0.7 < best <= 2 * 250 * 1.05, best
    assert result["layout"]["workers"] == 2
    assert result["knee"]["probes"], result["knee"]
    gen = result["generator"]
    assert gen["max_issue_rps"] > 10 * best
    assert gen["overhead_ms"]["p50"] < 2.0


def test_a_failing_model_is_an_error_not_a_figure():
    """It fails on its 10th call, after the warm-up call: under load, not before."""
    calls = []

    def factory(threads):
        def infer(_x):
            calls.append(1)
            if len(calls) >= 10:
                raise ValueError("bad input shape")
        return infer

    with pytest.raises(RuntimeError, match="bad input shape"):
        run_load(factory, X, for_profile("smoke"), cpus=1)


def test_overload_ends_in_bounded_time_and_counts_what_never_finished():
    """Ten times what one worker can serve: the point still ends on time, the requests that
    never ran are counted (at their age, a lower bound) instead of dropped, and it fails."""
    from servebench_engine.load.knee import judge
    from servebench_engine.load.openloop import open_point
    from servebench_engine.load.settings import LoadSettings

    def infer(_x):
        time.sleep(0.010)

    settings = LoadSettings(warmup_s=0.1, window_s=0.3, window_min_queries=1, max_window_s=0.3,
                            max_windows=3, grace_s=0.2, min_queries_p99=1, p99_bound_ms=1e6)
    began = time.monotonic()
    point = open_point([infer], X, 1000.0, 1, settings).result
    took = time.monotonic() - began
    assert took < 0.1 + 3 * (0.3 + 0.2) + 1.0, f"took {took:.1f} s"
    assert point["unfinished"] > 0.5 * point["arrivals"], point
    assert point["achieved_rps"] < 150, point  # what one 10 ms worker can do
    # The backlog is in the latency: at least a good part of the stream's length.
    assert point["latency_ms"]["p99"] > 300, point["latency_ms"]
    ok, why = judge(point, settings)
    assert not ok, why
