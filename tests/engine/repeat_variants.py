"""Variants for the repeat tests (registered per test with monkeypatch; each child imports this
module by the path the parent registered): they note which process served them, or die."""

from __future__ import annotations

import os
import signal

import numpy as np

from servebench_engine.variants.base import Served, Variant


class PidNoter(Variant):
    """Appends "<variant> <pid>" to pids.txt in its workdir each time a process loads it."""

    id = "pid"
    description = "notes the process that serves it"

    def load(self, ctx):
        with open(ctx.workdir / "pids.txt", "a", encoding="utf-8") as f:
            f.write(f"{type(self).__name__} {os.getpid()}\n")

        def infer(x):
            return np.zeros((len(x), ctx.num_classes), np.float32)

        return Served(infer=infer, model_path=None)


class PidA(PidNoter):
    pass


class PidB(PidNoter):
    pass


class KilledInLoad(Variant):
    """The process serving it dies of SIGKILL (what the OOM killer sends) while loading."""

    id = "oom"
    description = "killed by a signal while loading"

    def load(self, ctx):
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")  # pragma: no cover
