"""Variants that fail on purpose, for the crash tests (registered per test with monkeypatch)."""

from __future__ import annotations

import numpy as np

from servebench_engine.variants.base import Served, Variant


class RaisesInLoad(Variant):
    id = "boom"
    description = "raises while loading"

    def load(self, ctx):
        raise RuntimeError("boom while loading the session")


class RaisesMidMeasurement(Variant):
    id = "boom-later"
    description = "answers a few calls, then raises"

    def load(self, ctx):
        calls = {"n": 0}

        def infer(x):
            calls["n"] += 1
            if calls["n"] > 5:
                raise MemoryError("out of memory on call 6")
            return np.zeros((len(x), ctx.num_classes), np.float32)

        return Served(infer=infer, model_path=None)


class Interrupted(Variant):
    id = "ctrl-c"
    description = "the user presses Ctrl-C while it prepares"

    def prepare(self, ctx):
        raise KeyboardInterrupt

    def load(self, ctx):  # pragma: no cover - never reached
        raise AssertionError
