"""Timing of one served model: cold start, accuracy, single-sample latency, batch throughput.

Everything is timed with ``time.perf_counter_ns`` around the call and nothing else, and the
raw nanosecond samples are kept so any statistic can be recomputed from the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
import sys
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np

from .context import Context, Split
from .profiles import LoopSpec
from .variants.base import Served, Variant

_clock = time.perf_counter_ns
PROC_SELF = Path("/proc/self")


def peak_rss_mb(proc: Path = PROC_SELF) -> float | None:
    """This process's peak resident memory in MB (VmHWM; getrusage where /proc has none)."""
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1) if peak else None


def children_peak_rss_mb() -> float | None:
    """The largest peak resident memory of this process's finished child processes (a helper
    venv's quantiser or converter), in MB; None before any."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1) if peak else None


def reset_peak_rss(proc: Path = PROC_SELF) -> bool:
    """Start the peak over from the current resident size (Linux >= 4.0: ``5`` to clear_refs),
    so what serving needs is not hidden under what preparing needed. False: not possible here."""
    try:
        (proc / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Loop:
    samples_ns: list[int]
    duration_s: float          # wall time of the timed loop, loop overhead included
    minimums_met: bool         # False: a cap stopped it first (slow variant): say so


def at_least(spec: LoopSpec, seconds: float | None) -> LoopSpec:
    """``spec`` measuring for at least ``seconds`` (an energy meter's shortest valid window),
    as far as its time cap allows: past the cap the window stays short and the meter's figure
    says it is not valid."""
    if seconds is None or seconds <= spec.min_s:
        return spec
    return dataclasses.replace(spec, min_s=min(seconds, spec.max_s))


def timed_loop(call: Callable[[], object], spec: LoopSpec,
               around: ContextManager | None = None) -> Loop:
    """Warm up (count AND time), then time ``call`` until both minimums are met or a cap hits.

    The warm-up is bounded by the loop's time cap too (after at least one call), so a variant
    that takes a second per call does not spend its warm-up count's worth of seconds there.
    ``around`` (an energy window) is entered after the warm-up and left after the last timed
    call: it covers exactly the timed iterations.
    """
    start = _clock()
    warm = 0
    warm_ns, cap_ns = spec.warmup_s * 1e9, spec.max_s * 1e9
    while warm < spec.warmup_count or _clock() - start < warm_ns:
        call()
        warm += 1
        if _clock() - start >= cap_ns:
            break

    samples: list[int] = []
    min_ns, max_ns = spec.min_s * 1e9, spec.max_s * 1e9
    with around if around is not None else contextlib.nullcontext():
        begin = _clock()
        elapsed = 0
        while len(samples) < spec.max_count and elapsed < max_ns:
            t0 = _clock()
            call()
            samples.append(_clock() - t0)
            elapsed = _clock() - begin
            if len(samples) >= spec.min_count and elapsed >= min_ns:
                break
    met = len(samples) >= spec.min_count and elapsed >= min_ns
    return Loop(samples, elapsed / 1e9, met)


def check_logits(out: np.ndarray, batch: int, num_classes: int | None) -> np.ndarray:
    """``num_classes`` None: a model with its own label set, only [batch, any] is checked."""
    out = np.asarray(out)
    if out.ndim != 2 or out.shape[0] != batch or num_classes not in (None, out.shape[1]):
        raise ValueError(f"model returned shape {out.shape}, "
                         f"expected ({batch}, {num_classes or 'classes'})")
    return out


def cold_start(variant: Variant, ctx: Context) -> tuple[Served, float, float]:
    """Load (session creation, compilation) plus the first inference; returns both parts in ms."""
    x = ctx.sample(1)
    t0 = _clock()
    served = variant.load(ctx)
    t1 = _clock()
    out = served.infer(x)
    t2 = _clock()
    own_labels = served.info.get("accuracy_unavailable")
    check_logits(out, 1, None if own_labels else ctx.num_classes)
    return served, (t1 - t0) / 1e6, (t2 - t1) / 1e6


def accuracy(served: Served, split: Split, num_classes: int, batch_size: int) -> dict:
    """Top-1 correct/total over the split, in batches the served model accepts."""
    step = min(batch_size, served.max_batch or batch_size)
    correct = 0
    total = len(split.labels)
    for i in range(0, total, step):
        x = np.ascontiguousarray(split.images[i : i + step])
        logits = check_logits(served.infer(x), len(x), num_classes)
        correct += int((logits.argmax(axis=1) == split.labels[i : i + step]).sum())
    return {"correct": correct, "total": total, "value": correct / total if total else None}


def batch_plan(batch_size: int, max_batch: int | None) -> tuple[int, int, str]:
    """How one batch of ``batch_size`` images is served: (calls, images per call, mode).

    A model that takes fewer images per call (a fixed-shape .tflite takes 1) serves the batch as
    consecutive calls, and the record says so (``batch_mode``) instead of leaving a hole: what a
    client with 32 images waiting gets from that model is exactly that.
    """
    if max_batch is None or max_batch >= batch_size:
        return 1, batch_size, "batched"
    calls = math.ceil(batch_size / max_batch)
    mode = "sequential" if max_batch == 1 else "chunked"
    return calls, max_batch, mode


def batch_call(served: Served, ctx: Context, batch_size: int) -> tuple[Callable[[], object], str]:
    calls, per_call, mode = batch_plan(batch_size, served.max_batch)
    if calls == 1:
        x = ctx.sample(batch_size)
        return (lambda: served.infer(x)), mode
    chunks = [np.ascontiguousarray(c) for c in np.array_split(ctx.sample(batch_size), calls)]
    infer = served.infer

    def run_chunks() -> None:
        for c in chunks:
            infer(c)

    return run_chunks, f"{mode}: {calls} calls of <= {per_call} images"
