"""The load mode's one entry point: closed-loop sweep, open-loop curve, knee, generator cost.

Order matters: the closed loop first finds the ceiling and the layout that reaches it (how
many sessions, how many intra-op threads each, how many requests in flight), the open loop then
serves with that layout, and the knee is searched below that ceiling. Last, the same open-loop
harness drives a model that returns at once, at the highest rate used, so the record says how
much of each latency is the generator's, and how far the knee is from what it can issue.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .. import environment
from ..stats import min_queries
from .closedloop import closed_point
from .knee import max_probes, search
from .openloop import Infer, OpenStream, open_point
from .settings import LoadSettings

Factory = Callable[[int], Infer]
SATURATION_CAP_S = 30.0


def default_layouts(cpus: int) -> list[tuple[int, int]]:
    """For every power of two s <= cpus: s sessions of cpus // s intra-op threads each."""
    out, s = [], 1
    while s <= cpus:
        out.append((s, cpus // s))
        s *= 2
    return out


def concurrency_levels(settings: LoadSettings, cpus: int) -> list[int]:
    if settings.concurrency:
        return sorted(set(settings.concurrency))
    top = max(1, settings.concurrency_per_cpu * cpus)
    levels, k = [], 1
    while k <= top:
        levels.append(k)
        k *= 2
    return levels


def planned_s(settings: LoadSettings, cpus: int) -> tuple[float, float]:
    """(least, most) seconds :func:`run_load` takes on ``cpus`` CPUs, from the settings alone,
    for planning a run before any node is reached: least, every closed-loop point and curve
    rate settled in ``stability_windows`` windows of ``window_s`` and the knee decided by one
    probe; most, every point through ``max_windows`` windows of
    ``max_window_s``, the knee through its most probes, and the generator's saturation cap.
    Model loads and first calls are not counted (the timed loops' estimate has them)."""
    closed = len(settings.layouts or default_layouts(cpus)) * len(concurrency_levels(settings, cpus))
    curve = len(settings.rates) or len(settings.rate_fractions)
    least_point = settings.warmup_s + settings.stability_windows * settings.window_s
    most_point = settings.warmup_s + settings.max_windows * settings.max_window_s + settings.grace_s
    least = (closed + curve + 1 + 1) * least_point  # the last 1: the generator's null-model point
    most = (closed + curve + max_probes(settings) + 1) * most_point + SATURATION_CAP_S
    return least, most


def run_load(factory: Factory, sample: np.ndarray, settings: LoadSettings | None = None, *,
             cpus: int | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Measure one served model under load; returns one JSON-able dict.

    ``factory(threads)`` opens one more session of the model and returns its batch-1 ``infer``
    (for ONNX Runtime: a new InferenceSession with ``intra_op_num_threads = threads``); a model
    without a thread setting ignores it. ``sample`` is the batch-1 input every request sends.
    """
    settings = settings or LoadSettings()
    cpus = cpus or environment.usable_cpus()
    say = progress or (lambda _msg: None)
    began = time.monotonic()

    closed, best, best_infers = [], None, None
    for sessions, threads in (settings.layouts or default_layouts(cpus)):
        infers = [factory(threads) for _ in range(sessions)]
        for infer in infers:
            infer(sample)  # first call: allocations and lazy init, not measured
        holds_best = False
        for k in concurrency_levels(settings, cpus):
            point = closed_point(infers, sample, k, settings)
            point["layout"] = {"sessions": sessions, "intra_op_threads": threads}
            closed.append(point)
            if point["reasons"] and point["reasons"][0].startswith("the model failed"):
                raise RuntimeError(f"closed loop, {k} in flight: {point['reasons'][0]}")
            say(f"closed loop {sessions}x{threads} threads, {k} in flight: "
                f"{point['throughput_rps']} req/s{'' if point['stable'] else ' (unstable)'}")
            if _better(point, best):
                best, holds_best = point, True
        if holds_best:
            best_infers = infers  # the other layouts' sessions are dropped as we go
        del infers
    if best is None or best_infers is None:
        raise RuntimeError("no closed-loop point completed a request")
    ceiling = best["throughput_rps"]
    workers = settings.workers or best["concurrency"]
    choice = {"sessions": best["layout"]["sessions"],
              "intra_op_threads": best["layout"]["intra_op_threads"], "workers": workers,
              "ceiling_rps": ceiling, "ceiling_stable": best["stable"],
              "why": "the highest closed-loop throughput of every layout and concurrency "
                     "(stable points first)"}

    def measure(rate: float) -> dict:
        point = open_point(best_infers, sample, rate, workers, settings).result
        if point["reasons"] and point["reasons"][0].startswith("the model failed"):
            raise RuntimeError(f"open loop, {rate:.1f} req/s: {point['reasons'][0]}")
        lat = point["latency_ms"]
        say(f"open loop {rate:.1f} req/s: p99 {lat['p99'] if lat else None} ms"
            f"{'' if point['stable'] else ' (unstable)'}")
        return point

    rates = list(settings.rates) or [f * ceiling for f in settings.rate_fractions]
    curve = [measure(r) for r in rates]
    knee = search(measure, ceiling, settings)
    curve += [p["point"] for p in knee["probes"]]
    curve.sort(key=lambda p: p["offered_rps"])
    top = max(p["offered_rps"] for p in curve)
    generator = generator_cost(sample, top, workers, settings)
    if knee["knee_rps"]:
        generator["knee_share_of_max_issue"] = round(knee["knee_rps"] / generator["max_issue_rps"],
                                                     4)
    return {
        "cpus": cpus,
        "settings": settings.as_dict(),
        "closed_loop": {"points": closed, "best": _brief(best)},
        "layout": choice,
        "open_loop": {"workers": workers, "points": curve},
        "knee": knee_summary(knee),
        "best_closed_loop_rps": ceiling,
        "knee_share_of_ceiling": round(knee["knee_rps"] / ceiling, 4) if knee["knee_rps"] else None,
        "generator": generator,
        "duration_s": round(time.monotonic() - began, 2),
    }


def knee_summary(knee: dict) -> dict:
    """The search's answer with the knee point's figures, and whether its p99 is valid by
    MLPerf LoadGen's minimum query count (662), whatever count the search itself required."""
    out = {k: v for k, v in knee.items() if k != "probes"}
    out["probes"] = [{k: v for k, v in p.items() if k != "point"} for p in knee["probes"]]
    at = next((p["point"] for p in knee["probes"]
               if p["passed"] and p["rate_rps"] == knee["knee_rps"]), None)
    lat = at["latency_ms"] if at else None
    out.update(achieved_rps=at["achieved_rps"] if at else None,
               p50_ms=lat["p50"] if lat else None, p99_ms=lat["p99"] if lat else None,
               queries=lat["count"] if lat else 0,
               p99_valid=bool(lat and lat["count"] >= min_queries(99)))
    return out


def _better(point: dict, best: dict | None) -> bool:
    if point["throughput_rps"] is None:
        return False
    if best is None:
        return True
    return (point["stable"], point["throughput_rps"]) > (best["stable"], best["throughput_rps"])


def _brief(point: dict) -> dict:
    return {k: point[k] for k in ("concurrency", "layout", "throughput_rps", "stable")}


def _null(_x: np.ndarray) -> None:
    return None


def generator_cost(sample: np.ndarray, rate: float, workers: int, settings: LoadSettings) -> dict:
    """The harness on a model that returns at once: its latency at ``rate`` is the generator's
    own overhead per request; offered everything at once, the most requests/s it can issue."""
    point = open_point([_null], sample, rate, workers, settings).result
    n = settings.generator_requests
    stream = OpenStream([_null], sample, np.zeros(n, np.int64), workers)
    stream.start(lead_s=0.0)
    stream.settle(n, stream.t0 + int(SATURATION_CAP_S * 1e9))
    stream.stop()
    finished = int(np.count_nonzero(stream.done))
    span_s = (int(stream.done.max()) - stream.t0) / 1e9 if finished else None
    lat = point["latency_ms"]
    return {
        "rate_rps": round(rate, 3),
        "overhead_ms": {k: lat[k] for k in ("mean", "p50", "p99", "max")} if lat else None,
        "dispatch_lag_ms": point["dispatch_lag_ms"],
        "stable": point["stable"],
        "max_issue_rps": round(finished / span_s, 1) if span_s else None,
        "saturation_requests": finished,
    }
