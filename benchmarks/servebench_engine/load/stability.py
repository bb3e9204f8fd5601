"""Windows of a load point, and the rule that says when a point is stable.

The rule (perf_analyzer's, with a wider latency tolerance): a point is stable when, over its
last ``stability_windows`` windows,

* throughput agrees: each window's throughput within ``stability_tolerance`` (10 %) of their
  mean. In a closed loop that is completions per second. In an open loop the offered rate is
  fixed but a Poisson window's arrival count varies by 1/sqrt(n) on its own (9 % at 120 a
  window), so there each window's completions must be within the tolerance (plus
  sqrt(arrivals), for requests in flight across its edges) of its *own* arrivals: the server
  keeps up, window after window;
* p99 agrees: each window's p99 within ``p99_tolerance`` (20 %) of their mean.

Why 20 % for p99: with 100-300 requests in a 1 s window, the window p99s of a perfectly
stationary M/D/1 queue (5 ms service, simulated with the Lindley recursion, 40 seeds, up to
8 windows sliding) agreed within 10 % in only 55-57 % of the runs at rho 0.3-0.6 and 40 % at
0.8; within 20 %, in 100 % / 85 % / 75 %. A service time drifting by 30 %/s was still never
stable at rho 0.6-0.8 and stable in 60 % of the runs at rho 0.3 under the 20 % rule.

When the last windows do not agree, one more window runs (the stream goes on, nothing is
restarted), up to ``max_windows``; a point still not stable then is recorded as unstable with
its windows, and the knee search never counts it as passing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..stats import nearest_rank


@dataclass
class Window:
    start_s: float           # from the start of the point's stream
    length_s: float
    arrivals: int            # requests scheduled (open loop) or started (closed loop) in it
    completions: int         # requests that finished in it
    p50_ms: float | None
    p99_ms: float | None
    unfinished: int = 0      # requests of the window still running when it was judged

    @property
    def throughput(self) -> float:
        return self.completions / self.length_s

    def as_dict(self) -> dict:
        return {"start_s": round(self.start_s, 4), "length_s": round(self.length_s, 4),
                "arrivals": self.arrivals, "completions": self.completions,
                "throughput_rps": round(self.throughput, 3), "p50_ms": self.p50_ms,
                "p99_ms": self.p99_ms, "unfinished": self.unfinished}


def window_of(latencies_ns: np.ndarray, start_s: float, length_s: float, arrivals: int,
              completions: int, unfinished: int = 0) -> Window:
    values = np.sort(latencies_ns).astype(np.float64) / 1e6
    p50 = nearest_rank(values, 50) if len(values) else None
    p99 = nearest_rank(values, 99) if len(values) else None
    return Window(start_s, length_s, arrivals, completions,
                  None if p50 is None else round(float(p50), 4),
                  None if p99 is None else round(float(p99), 4), unfinished)


def _slack(w: Window, tolerance: float) -> float:
    """Completions may differ from arrivals by the tolerance plus sqrt(arrivals): requests in
    flight across the window's edges move between windows without anything being wrong."""
    return tolerance * w.arrivals + math.sqrt(w.arrivals)


def _agree(values: list[float], tolerance: float) -> bool:
    mean = sum(values) / len(values)
    return mean > 0 and all(abs(v - mean) <= tolerance * mean for v in values)


def verdict(windows: list[Window], n: int, tolerance: float, p99_tolerance: float,
            open_loop: bool) -> dict:
    """Whether the last ``n`` windows agree, and on what they disagree (empty when stable)."""
    if len(windows) < n:
        return {"stable": False, "reasons": [f"only {len(windows)} of {n} windows"]}
    last = windows[-n:]
    reasons = []
    if open_loop:
        behind = [w for w in last if abs(w.completions - w.arrivals) > _slack(w, tolerance)]
        if behind:
            reasons.append(f"completions differ from arrivals by more than {tolerance:.0%} in "
                           f"{len(behind)} of the last {n} windows (not keeping up)")
    elif not _agree([w.throughput for w in last], tolerance):
        reasons.append(f"throughput differs by more than {tolerance:.0%} over the last "
                       f"{n} windows")
    if any(w.unfinished for w in last):
        reasons.append("requests still unfinished when their window was judged")
    p99s = [w.p99_ms for w in last]
    if any(p is None for p in p99s):
        reasons.append("a window without completed requests")
    elif not _agree(p99s, p99_tolerance):
        reasons.append(f"p99 differs by more than {p99_tolerance:.0%} over the last {n} windows")
    return {"stable": not reasons, "reasons": reasons}
