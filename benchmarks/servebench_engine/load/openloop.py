"""Open loop: Poisson arrivals on their own schedule, served by worker threads from one queue.

Every latency runs from the request's *scheduled* arrival time (wrk2's rule), never from when
the generator got round to sending it or a worker to picking it up: a stall that holds up the
server, or the generator, is charged to every request scheduled during it, so it cannot hide
itself (coordinated omission). The schedule is drawn before the stream starts, from a seeded
generator, so the arrival times do not depend on how the server behaves.

Threads, not processes: ONNX Runtime releases the GIL inside ``run``, and a sleeping fake model
does too. Count and time are bounded: the schedule holds at most ``max_requests_per_point``
requests, and a point ends after ``max_windows`` windows whatever happens.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..stats import summarize_ns
from .settings import LoadSettings
from .stability import Window, verdict, window_of

_clock = time.perf_counter_ns
Infer = Callable[[np.ndarray], Any]
_POLL_S = 0.002
_PR_SET_TIMERSLACK = 29


def precise_sleep() -> None:
    """Ask Linux for 1 us timer slack on this thread (default 50 us: every sleep() woke that much
    late, and a late wake-up is charged to the request). Best effort: elsewhere a no-op."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def poisson_offsets(rate: float, duration_s: float, rng: np.random.Generator,
                    cap: int) -> np.ndarray:
    """Arrival times (ns from the stream's start) of a Poisson process, at most ``cap`` of them."""
    mean = rate * duration_s
    n = min(cap, int(mean + 8 * math.sqrt(mean) + 16))
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    return (times[times < duration_s] * 1e9).astype(np.int64)


def window_length(rate: float, settings: LoadSettings) -> float:
    """Long enough for ``window_min_queries`` arrivals at ``rate``, and for the counted windows
    to hold p99's minimum query count with 15 % to spare (Poisson counts vary), within the cap."""
    per_window = max(settings.window_min_queries,
                     1.15 * settings.min_queries_p99 / settings.stability_windows)
    return min(max(settings.window_s, per_window / rate), settings.max_window_s)


class OpenStream:
    """One stream of requests served by ``workers`` threads, with its raw timestamps.

    The queue is the schedule itself: a free worker claims the next request in arrival order
    (a lock-protected cursor), sleeps until its scheduled time if it is early, and serves it.
    That is a FCFS queue with ``workers`` servers, exactly, without a dispatcher thread whose
    wake-up and hand-off would add a second scheduling delay to every request (measured here:
    0.1-0.5 ms on a busy 2-core machine). Memory is bounded by the schedule's length.

    ``claimed``, ``started`` and ``done`` are absolute ``perf_counter_ns`` values, 0 until the
    event happened; the scheduled time of request i is ``t0 + offsets[i]``. A request claimed
    before its time found a worker free: its ``started - scheduled`` is the generator's own lag.
    """

    def __init__(self, infers: Sequence[Infer], x: np.ndarray, offsets: np.ndarray,
                 workers: int) -> None:
        self.infers, self.x, self.offsets = list(infers), x, offsets
        n = len(offsets)
        self.claimed = np.zeros(n, np.int64)
        self.started = np.zeros(n, np.int64)
        self.done = np.zeros(n, np.int64)
        self.cursor = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._serve, args=(self.infers[i % len(infers)],),
                                         daemon=True) for i in range(workers)]
        self.t0 = 0

    def start(self, lead_s: float = 0.005) -> None:
        self.t0 = _clock() + int(lead_s * 1e9)
        for t in self.threads:
            t.start()

    def _claim(self) -> int | None:
        with self.lock:
            i = self.cursor
            if i >= len(self.offsets):
                return None
            self.cursor = i + 1
        self.claimed[i] = _clock()
        return i

    def _serve(self, infer: Infer) -> None:
        precise_sleep()
        x, offsets = self.x, self.offsets
        while not self.stopping.is_set():
            i = self._claim()
            if i is None:
                return
            due = self.t0 + int(offsets[i])
            while (left := due - _clock()) > 0:
                if self.stopping.is_set():
                    return  # never started: counted as unfinished, at its age at the stop
                time.sleep(min(left / 1e9, 0.05))
            self.started[i] = _clock()
            try:
                infer(x)
            except Exception as exc:  # noqa: BLE001 - one failed request must end the point
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.stopping.set()
                return
            self.done[i] = _clock()

    def scheduled(self, lo: int, hi: int) -> np.ndarray:
        return self.t0 + self.offsets[lo:hi]

    def index(self, offset_ns: float) -> int:
        return int(np.searchsorted(self.offsets, offset_ns, side="left"))

    def sleep_until(self, t_ns: int) -> None:
        while (left := t_ns - _clock()) > 0 and not self.stopping.is_set():
            time.sleep(min(left / 1e9, 0.05))

    def settle(self, hi: int, deadline_ns: int) -> None:
        """Wait until the first ``hi`` requests are done, or the deadline, or a failure."""
        while np.count_nonzero(self.done[:hi]) < hi and _clock() < deadline_ns \
                and not self.stopping.is_set():
            time.sleep(_POLL_S)

    def latencies(self, lo: int, hi: int, now: int) -> tuple[np.ndarray, int]:
        """Latency from the scheduled time of requests lo..hi; the unfinished ones count at
        their age at ``now`` (a lower bound), and their number is returned with them."""
        done = self.done[lo:hi]
        unfinished = int(np.count_nonzero(done == 0))
        ends = np.where(done > 0, done, now)
        return ends - self.scheduled(lo, hi), unfinished

    def stop(self, join_s: float = 5.0) -> int:
        """Stop claiming requests, let each worker finish its call; returns the stop time."""
        self.stopping.set()
        now = _clock()
        for t in self.threads:
            t.join(join_s)
        return now


@dataclass
class OpenPoint:
    """One open-loop point: the summary dict and the stream's raw timestamps."""

    stream: OpenStream
    lo: int                  # first request counted (the counted windows' first)
    hi: int                  # one past the last
    stopped_ns: int
    result: dict


def open_point(infers: Sequence[Infer], x: np.ndarray, rate: float, workers: int,
               settings: LoadSettings, seed: int | None = None) -> OpenPoint:
    """Offer a Poisson stream at ``rate`` until the last windows agree or ``max_windows``."""
    win = window_length(rate, settings)
    duration = settings.warmup_s + settings.max_windows * win
    rng = np.random.default_rng(settings.seed if seed is None else seed)
    offsets = poisson_offsets(rate, duration, rng, settings.max_requests_per_point)
    if not len(offsets):
        raise ValueError(f"rate {rate}/s offers no request in {duration:.1f} s")
    stream = OpenStream(infers, x, offsets, workers)
    stream.start()
    windows: list[Window] = []
    judged: dict = {"stable": False, "reasons": ["no window ran"]}
    try:
        for k in range(settings.max_windows):
            a, b = settings.warmup_s + k * win, settings.warmup_s + (k + 1) * win
            lo, hi = stream.index(a * 1e9), stream.index(b * 1e9)
            if a * 1e9 > offsets[-1]:
                break  # the request cap ended the schedule before this window
            stream.sleep_until(stream.t0 + int(b * 1e9))
            stream.settle(hi, stream.t0 + int((b + settings.grace_s) * 1e9))
            now = _clock()
            lat, unfinished = stream.latencies(lo, hi, now)
            t_a, t_b = stream.t0 + int(a * 1e9), stream.t0 + int(b * 1e9)
            completions = int(np.count_nonzero((stream.done >= t_a) & (stream.done < t_b)))
            windows.append(window_of(lat, a, win, hi - lo, completions, unfinished))
            judged = verdict(windows, settings.stability_windows, settings.stability_tolerance,
                             settings.p99_tolerance, open_loop=True)
            if judged["stable"] or stream.errors:
                break
    finally:
        stopped = stream.stop()
    counted = windows[-settings.stability_windows:]
    lo = stream.index(counted[0].start_s * 1e9) if counted else 0
    hi = stream.index((counted[-1].start_s + counted[-1].length_s) * 1e9) if counted else 0
    result = summarize_point(stream, lo, hi, stopped, rate, counted)
    result.update(windows=[w.as_dict() for w in windows], window_s=round(win, 4),
                  workers=workers, **judged)
    if stream.errors:
        result["stable"] = False
        result["reasons"] = [f"the model failed: {stream.errors[0]}"]
    return OpenPoint(stream, lo, hi, stopped, result)


def _ms(values_ns: np.ndarray) -> dict | None:
    if not len(values_ns):
        return None
    ms = np.sort(values_ns.astype(np.float64)) / 1e6
    return {"mean": round(float(ms.mean()), 4), "p50": round(float(np.median(ms)), 4),
            "p99": round(float(ms[max(math.ceil(0.99 * len(ms)), 1) - 1]), 4),
            "max": round(float(ms[-1]), 4)}


def summarize_point(stream: OpenStream, lo: int, hi: int, stopped_ns: int, rate: float,
                    counted: list[Window]) -> dict:
    """Latency (from the scheduled time), waiting, service and the generator's lag of the
    requests scheduled in the counted windows."""
    lat, unfinished = stream.latencies(lo, hi, stopped_ns)
    sched = stream.scheduled(lo, hi)
    ok = stream.done[lo:hi] > 0
    started = stream.started[lo:hi]
    early = (stream.claimed[lo:hi] > 0) & (stream.claimed[lo:hi] <= sched) & (started > 0)
    span = sum(w.length_s for w in counted)
    return {
        "offered_rps": round(rate, 3),
        "arrivals": int(hi - lo),
        "achieved_rps": round(sum(w.completions for w in counted) / span, 3) if span else None,
        "latency_ms": summarize_ns(lat.tolist()) if len(lat) else None,
        "unfinished": unfinished,
        # Waiting = scheduled -> a worker picks it up; service = picked up -> done.
        "wait_ms": _ms((started - sched)[ok]),
        "service_ms": _ms((stream.done[lo:hi] - started)[ok]),
        # How late a free worker started a request it was waiting for: the generator's own lag.
        "dispatch_lag_ms": _ms((started - sched)[early]),
    }
