"""Variants for the repeat and prepare-ahead tests (registered per test with monkeypatch; each
child imports this module by the path the parent registered): they note which process served or
prepared them, and when, or die."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from servebench_engine.variants import reuse
from servebench_engine.variants.base import Served, Variant


def answers_zeros(ctx) -> Served:
    return Served(infer=lambda x: np.zeros((len(x), ctx.num_classes), np.float32),
                  model_path=None)


class PidNoter(Variant):
    """Appends "<variant> <pid>" to pids.txt in its workdir each time a process loads it."""

    id = "pid"
    description = "notes the process that serves it"

    def load(self, ctx):
        with open(ctx.workdir / "pids.txt", "a", encoding="utf-8") as f:
            f.write(f"{type(self).__name__} {os.getpid()}\n")
        return answers_zeros(ctx)


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


def _note(ctx, line: str) -> None:
    # One short append per line: whole lines even when two processes note at once.
    with open(ctx.workdir / "notes.txt", "a", encoding="utf-8") as f:
        f.write(line + "\n")


class SlowToPrepare(Variant):
    """prepare() takes a second the first time (noting its span and process), and reuses what
    it made afterwards, as the real quantisers and converters do (variants/reuse.py)."""

    id = "slow"
    description = "slow to prepare"
    prepare_estimate_s = 1.0

    def prepare(self, ctx):
        name = type(self).__name__
        artifact = ctx.workdir / f"{name}.bin"
        key = reuse.source_key(name, ctx.model_onnx)
        self.reused = reuse.reusable(artifact, key) is not None
        if self.reused:
            return
        started = time.time()
        self.make(ctx)
        artifact.write_bytes(b"made")
        reuse.remember(artifact, key, {})
        _note(ctx, f"prepare {name} {os.getpid()} {started} {time.time()}")

    def make(self, ctx):
        time.sleep(1.0)

    def load(self, ctx):
        _note(ctx, f"load {type(self).__name__} {os.getpid()} {time.time()}")
        return answers_zeros(ctx)


class SlowA(SlowToPrepare):
    pass


class SlowB(SlowToPrepare):
    pass


class FailsToPrepare(SlowToPrepare):
    def make(self, ctx):
        raise RuntimeError("the quantiser gave up")


class KilledInPrepare(SlowToPrepare):
    def make(self, ctx):
        os.kill(os.getpid(), signal.SIGKILL)
