"""Closed loop: ``concurrency`` clients, each sending its next request as soon as its last one
answered. What it measures is the server's throughput ceiling at that concurrency; its
latencies are service times plus contention, not what an arriving request would see (that is
the open loop's job)."""

from __future__ import annotations

import threading
import time
from typing import Sequence

import numpy as np

from ..stats import summarize_ns
from .openloop import Infer
from .settings import LoadSettings
from .stability import Window, verdict, window_of

_clock = time.perf_counter_ns


def closed_point(infers: Sequence[Infer], x: np.ndarray, concurrency: int,
                 settings: LoadSettings) -> dict:
    """Run ``concurrency`` client threads (client i on session i mod len(infers)) for the
    warm-up and then windows of ``window_s`` until the last ones agree or ``max_windows``."""
    stop = threading.Event()
    per_client = max(1, settings.max_requests_per_point // concurrency)
    starts: list[list[int]] = [[] for _ in range(concurrency)]
    dones: list[list[int]] = [[] for _ in range(concurrency)]
    errors: list[str] = []

    def client(i: int) -> None:
        infer, s, d = infers[i % len(infers)], starts[i], dones[i]
        while not stop.is_set() and len(d) < per_client:
            t = _clock()
            try:
                infer(x)
            except Exception as exc:  # noqa: BLE001 - recorded; the point is then invalid
                errors.append(f"{type(exc).__name__}: {exc}")
                stop.set()
                return
            d.append(_clock())
            s.append(t)

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(concurrency)]
    t0 = _clock()
    for t in threads:
        t.start()
    win = settings.window_s
    windows: list[Window] = []
    judged: dict = {"stable": False, "reasons": ["no window ran"]}
    try:
        for k in range(settings.max_windows):
            a, b = settings.warmup_s + k * win, settings.warmup_s + (k + 1) * win
            _sleep_until(t0 + int(b * 1e9), stop)
            lat, started, completions = _between(starts, dones, t0 + int(a * 1e9),
                                                 t0 + int(b * 1e9))
            windows.append(window_of(lat, a, win, started, completions))
            judged = verdict(windows, settings.stability_windows, settings.stability_tolerance,
                             settings.p99_tolerance, open_loop=False)
            if judged["stable"] or stop.is_set():
                break
    finally:
        stop.set()
        for t in threads:
            t.join(10.0)
    counted = windows[-settings.stability_windows:]
    span = sum(w.length_s for w in counted)
    lat = np.empty(0, np.int64)
    if counted:
        lat, _, _ = _between(starts, dones, t0 + int(counted[0].start_s * 1e9),
                             t0 + int((counted[-1].start_s + counted[-1].length_s) * 1e9))
    out = {
        "concurrency": concurrency,
        "sessions_used": min(concurrency, len(infers)),
        "throughput_rps": round(sum(w.completions for w in counted) / span, 3) if span else None,
        "latency_ms": summarize_ns(lat.tolist()) if len(lat) else None,
        "windows": [w.as_dict() for w in windows],
        **judged,
    }
    if errors:
        out.update(stable=False, reasons=[f"the model failed: {errors[0]}"])
    return out


def _sleep_until(t_ns: int, stop: threading.Event) -> None:
    while (left := t_ns - _clock()) > 0 and not stop.is_set():
        time.sleep(min(left / 1e9, 0.05))


def _between(starts: list[list[int]], dones: list[list[int]], a: int, b: int
             ) -> tuple[np.ndarray, int, int]:
    """Latencies of the requests that finished in [a, b), how many started in it, how many
    finished in it. Each client's lists are read up to a length taken first (they grow)."""
    lat, started, completions = [], 0, 0
    for s_list, d_list in zip(starts, dones):
        n = min(len(s_list), len(d_list))
        s = np.asarray(s_list[:n], np.int64)
        d = np.asarray(d_list[:n], np.int64)
        inside = (d >= a) & (d < b)
        lat.append((d - s)[inside])
        completions += int(inside.sum())
        started += int(((s >= a) & (s < b)).sum())
    return np.concatenate(lat) if lat else np.empty(0, np.int64), started, completions
