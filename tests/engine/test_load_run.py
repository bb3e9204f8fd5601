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
