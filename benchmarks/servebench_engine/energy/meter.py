"""Energy over a window: read every source at its start and end, poll in between, integrate.

A *source* (rapl, nvml, pi5-pmic, ipmi-dcmi) has ``name``, ``kind`` ("counter": ``read()``
gives cumulative joules per domain; "power": watts per domain), ``period_s`` (how often the
sensor updates), ``poll_s`` (how often a window reads it: counters to see every wrap, power
sources to sample), ``wrap_j`` (per counter domain, where it wraps; None: never or unknown),
``counted`` (the domains that add up without overlap) and ``detail`` (JSON-able). ``read()``
raises :class:`SourceError` with the reason a figure is null.

Counters give energy as the sum of consecutive differences (a difference below zero is one
wrap: plus the range). Power samples are integrated by the trapezoid rule over their own
timestamps (the middle of each read: a ``vcgencmd`` call takes milliseconds). A window shorter
than MIN_PERIODS sensor periods is not valid: :attr:`Meter.min_window_s` says how long the caller
must keep running.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

# "About ten sensor periods" (issue 21): below that, one period's quantisation is > 10 %.
MIN_PERIODS = 10
# Counter probe: read this often until the value changed PROBE_CHANGES times (or the limit).
PROBE_STEP_S = 0.0005
PROBE_CHANGES = 6


class SourceError(Exception):
    """A source cannot be read; the message is the reason recorded with the null figure."""


def _effective_period(source) -> float:
    """A counter updates at its own period; a power source is known only as often as sampled."""
    return source.period_s if source.kind == "counter" else max(source.period_s, source.poll_s)


class Meter:
    """The energy sources of this node (``detect``); ``sources`` empty: every figure is null
    with :meth:`reason`."""

    def __init__(self, sources: list, unavailable: dict[str, str] | None = None, *,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep, poll: bool = True):
        self.sources = list(sources)
        self.unavailable = dict(unavailable or {})
        self.clock, self.sleep = clock, sleep
        # False: no poll threads, the caller takes the samples (Window.sample): tests.
        self.poll = poll
        self.idle_figure: dict | None = None

    @property
    def label(self) -> str | None:
        return "+".join(s.name for s in self.sources) or None

    @property
    def period_s(self) -> float | None:
        return max((_effective_period(s) for s in self.sources), default=None)

    @property
    def min_window_s(self) -> float | None:
        """The shortest window whose figure is valid; None where there is no source."""
        return MIN_PERIODS * self.period_s if self.sources else None

    def reason(self) -> str | None:
        if self.sources:
            return None
        why = "; ".join(f"{name}: {text}" for name, text in self.unavailable.items())
        return f"no energy source on this node ({why})"

    def probe_periods(self, limit_s: float = 2.0) -> None:
        """Measure each counter's update period (NVML does not document its own; RAPL's is
        about 1 ms): read until the counted total changed PROBE_CHANGES times. Keeps the
        nominal period where the counter moved fewer than three times within ``limit_s``."""
        for source in self.sources:
            if source.kind != "counter":
                continue
            changes, last, start = [], None, self.clock()
            while len(changes) < PROBE_CHANGES and self.clock() - start < limit_s:
                try:
                    total = sum(source.read()[k] for k in source.counted)
                except Exception:  # noqa: BLE001 - the window records the failure itself
                    break
                if last is not None and total != last:
                    changes.append(self.clock())
                last = total
                self.sleep(PROBE_STEP_S)
            if len(changes) >= 3:
                source.period_s = (changes[-1] - changes[0]) / (len(changes) - 1)
                source.detail["update_period_measured"] = True

    def idle(self, seconds: float, *, probe: bool = True) -> dict:
        """Mean watts with nothing running, over ``seconds`` (at least :attr:`min_window_s`);
        kept for the figures of later windows (``idle_watts``). Call it before the variant
        is loaded."""
        if not self.sources:
            self.idle_figure = {"watts": None, "seconds": None, "valid": False,
                                "reason": self.reason(), "domains": {}}
            return self.idle_figure
        if probe:
            self.probe_periods()
        with self.window() as win:
            self.sleep(max(seconds, self.min_window_s))
        fig = win.figure(None)
        self.idle_figure = {
            "watts": fig["mean_watts"], "seconds": fig["window_s"], "valid": fig["valid"],
            "reason": fig["reason"],
            "domains": {s["source"]: {k: d["watts"] for k, d in s["domains"].items()}
                        for s in fig["sources"]}}
        return self.idle_figure

    def window(self) -> "Window":
        return Window(self)

    def close(self) -> None:
        for source in self.sources:
            getattr(source, "close", lambda: None)()


class Window:
    """``with meter.window() as win: <the timed loop>``, then ``win.figure(inferences)``."""

    def __init__(self, meter: Meter):
        self.meter = meter
        self.samples: dict[str, list[tuple[float, dict]]] = {s.name: [] for s in meter.sources}
        self.errors: dict[str, str] = {}
        self.t0 = self.t1 = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "Window":
        self.t0 = self.meter.clock()
        self.sample()
        for source in self.meter.sources if self.meter.poll else []:
            thread = threading.Thread(target=self._poll, args=(source,), daemon=True,
                                      name=f"energy-{source.name}")
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.sample()
        self.t1 = self.meter.clock()

    def _poll(self, source) -> None:
        # Fixed rate, not a fixed pause: a read that takes 30 ms (vcgencmd) does not stretch
        # the sampling period the record states.
        due = self.meter.clock()
        while True:
            due += source.poll_s
            if self._stop.wait(max(0.0, due - self.meter.clock())):
                return
            self._read(source)

    def _read(self, source) -> None:
        if source.name in self.errors:
            return
        before = self.meter.clock()
        try:
            values = source.read()
        except Exception as exc:  # noqa: BLE001 - a reader must never stop the benchmark
            self.errors[source.name] = str(exc) if isinstance(exc, SourceError) else \
                f"{source.name} read failed: {type(exc).__name__}: {exc}"
            return
        self.samples[source.name].append(((before + self.meter.clock()) / 2, values))

    def sample(self) -> None:
        """Read every source now (the window's start and end, and the poll threads)."""
        for source in self.meter.sources:
            self._read(source)

    def figure(self, inferences: int | None) -> dict:
        meter = self.meter
        window_s = self.t1 - self.t0
        parts = [_integrate(s, self.samples[s.name], self.errors.get(s.name))
                 for s in meter.sources]
        reason = meter.reason() or next((f"{p['source']}: {p['reason']}" for p in parts
                                         if not p["valid"]), None)
        if reason is None and window_s < meter.min_window_s:
            reason = (f"window {window_s:.3g} s is shorter than {MIN_PERIODS} sensor periods "
                      f"({meter.min_window_s:.3g} s): run the loop at least that long")
        valid = reason is None
        joules = sum(p["joules"] for p in parts) if valid else None
        watts = sum(p["mean_watts"] for p in parts) if valid else None
        idle = meter.idle_figure if meter.idle_figure and meter.idle_figure["valid"] else None
        per = joules / inferences if joules is not None and inferences else None
        above = ((watts - idle["watts"]) * window_s / inferences
                 if per is not None and idle else None)
        return {"source": meter.label, "valid": valid, "reason": reason,
                "inferences": inferences, "window_s": window_s,
                "min_window_s": meter.min_window_s, "update_period_s": meter.period_s,
                "joules": joules, "joules_per_inference": per, "mean_watts": watts,
                "idle_watts": idle["watts"] if idle else None,
                "joules_per_inference_above_idle": above,
                "sources": parts, "unavailable": meter.unavailable}


def _integrate(source, samples: list[tuple[float, dict]], error: str | None) -> dict:
    out = {"source": source.name, "kind": source.kind, "update_period_s": source.period_s,
           "sampling_period_s": None, "samples": len(samples), "valid": False, "reason": error,
           "joules": None, "mean_watts": None, "domains": {}, "detail": source.detail}
    if error is None and len(samples) < 2:
        out["reason"] = "fewer than two readings in the window"
    if out["reason"]:
        return out
    span = samples[-1][0] - samples[0][0]
    if source.kind == "power":
        out["sampling_period_s"] = span / (len(samples) - 1)
    domains: dict[str, float] = {}
    for key in samples[0][1]:
        try:
            series = [(t, v[key]) for t, v in samples]
        except KeyError:
            out["reason"] = f"domain {key} missing from a reading"
            return out
        if source.kind == "counter":
            joules = _counter_joules([v for _, v in series], source.wrap_j.get(key))
            if joules is None:
                out["reason"] = f"{key}: the counter went back with no known range (reset?)"
                return out
        else:
            joules = sum((t1 - t0) * (w0 + w1) / 2
                         for (t0, w0), (t1, w1) in zip(series, series[1:]))
        domains[key] = joules
    if span <= 0:
        out["reason"] = "the readings span no time"
        return out
    out["domains"] = {k: {"joules": j, "watts": j / span, "counted": k in source.counted}
                      for k, j in domains.items()}
    out["joules"] = sum(domains[k] for k in source.counted if k in domains)
    out["mean_watts"] = out["joules"] / span
    if source.kind == "counter" and out["joules"] == 0 and span > MIN_PERIODS * source.period_s:
        out["reason"] = f"the counters did not move in {span:.3g} s (a stub or frozen sensor)"
        return out
    out["valid"] = True
    return out


def _counter_joules(values: list[float], wrap: float | None) -> float | None:
    """Sum of consecutive differences; one below zero is one wrap of ``wrap`` joules."""
    total = 0.0
    for a, b in zip(values, values[1:]):
        step = b - a
        if step < 0:
            if not wrap:
                return None
            step += wrap
        total += step
    return total
