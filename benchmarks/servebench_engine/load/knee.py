"""The knee: the highest Poisson arrival rate whose p99 stays under the bound, found by a
bounded search (bracket, then bisection).

A probe passes only when all of these hold, and the record says which one failed:

* the point is stable (stability.py): an unstable point is never counted as passing, so the
  search moves down past it, and the knee is never taken from a point that did not settle;
* every request of the counted windows finished (none still running when the point ended);
* the counted windows hold at least ``min_queries_p99`` requests (MLPerf LoadGen's 662 by
  default; a quick profile may lower it, and then the record's ``p99_valid`` says the knee's
  p99 is not valid by LoadGen's rule);
* p99 (from each request's scheduled arrival time) <= ``p99_bound_ms``.

p99 is monotone in the arrival rate for a queue, so bisection finds the crossing; a noisy
probe can only move the answer by the last step's width, which the record gives.
"""

from __future__ import annotations

from typing import Callable

from .settings import LoadSettings


def judge(point: dict, settings: LoadSettings) -> tuple[bool, str]:
    """Whether an open-loop point passes the bound, and why not."""
    lat = point.get("latency_ms")
    if not point.get("stable"):
        return False, "unstable: " + "; ".join(point.get("reasons") or [])
    if point.get("unfinished"):
        return False, f"{point['unfinished']} requests unfinished"
    if not lat or lat["count"] < settings.min_queries_p99:
        count = lat["count"] if lat else 0
        return False, f"{count} requests < {settings.min_queries_p99} needed for p99"
    if lat["p99"] > settings.p99_bound_ms:
        return False, f"p99 {lat['p99']:.2f} ms > bound {settings.p99_bound_ms} ms"
    return True, f"p99 {lat['p99']:.2f} ms <= bound {settings.p99_bound_ms} ms"


def max_probes(settings: LoadSettings) -> int:
    """The most probes :func:`search` makes: every halving of the bracket's start down to its
    floor, the top, and every bisection step (no run makes all three: a bound, for planning)."""
    halvings, lo = 0, settings.knee_start_fraction
    while lo / 2 >= settings.knee_low_fraction * (1 - 1e-9):
        lo, halvings = lo / 2, halvings + 1
    return 1 + halvings + 1 + settings.knee_steps


def search(measure: Callable[[float], dict], ceiling_rps: float, settings: LoadSettings) -> dict:
    """Find the knee below the closed-loop ceiling: bracket, then bisect.

    The bracket starts at ``knee_start_fraction`` of the ceiling and halves while that fails,
    down to ``knee_low_fraction`` (a low rate needs long windows for p99's query count, so it
    is only tried when needed); the top is ``knee_high_fraction`` of the ceiling. ``measure``
    runs one open-loop point and returns its dict. Returns the knee (None when even the
    bottom fails), how it was found, and every probe in order.
    """
    probes: list[dict] = []

    def probe(rate: float) -> bool:
        point = measure(rate)
        ok, why = judge(point, settings)
        probes.append({"rate_rps": round(rate, 3), "passed": ok, "why": why, "point": point})
        return ok

    floor = settings.knee_low_fraction * ceiling_rps
    hi = settings.knee_high_fraction * ceiling_rps
    lo = min(settings.knee_start_fraction * ceiling_rps, hi)
    out = {"p99_bound_ms": settings.p99_bound_ms, "ceiling_rps": round(ceiling_rps, 3),
           "probes": probes}
    top_known_failing = False
    while not probe(lo):
        hi, top_known_failing = lo, True
        if lo / 2 < floor * (1 - 1e-9):
            return {**out, "knee_rps": None,
                    "found": f"below the bracket: {lo:.1f} req/s, its lowest rate, fails"}
        lo /= 2
    if not top_known_failing and probe(hi):
        return {**out, "knee_rps": round(hi, 3),
                "found": "at the bracket's top: the knee is at least this"}
    for _ in range(settings.knee_steps):
        if hi - lo <= settings.knee_resolution * hi:
            break
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return {**out, "knee_rps": round(lo, 3), "first_failing_rps": round(hi, 3),
            "found": "bisection", "resolution_rps": round(hi - lo, 3)}
