"""Every knob of the load mode, with its default and why (MLPerf LoadGen's TestSettings idea:
one object says exactly what a run did, and goes into the record whole)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..stats import min_queries


@dataclass(frozen=True)
class LoadSettings:
    # --- closed loop -------------------------------------------------------------------------
    # Requests in flight: 1, 2, 4, ... up to this many times the usable CPUs (past the cores a
    # closed loop only queues, which the sweep shows as flat throughput and growing latency).
    concurrency_per_cpu: int = 2
    # Explicit levels instead of the powers of two; empty: the powers of two.
    concurrency: tuple[int, ...] = ()
    # Session layouts tried: (sessions, intra-op threads each); empty: for every power of two
    # s <= usable CPUs, s sessions with CPUs // s threads. The best closed-loop throughput over
    # every (layout, concurrency) picks the layout and worker count the open loop serves with.
    layouts: tuple[tuple[int, int], ...] = ()
    # --- open loop ---------------------------------------------------------------------------
    # Poisson arrival rates (requests/s) measured for the curve besides the knee's probes...
    rates: tuple[float, ...] = ()
    # ... or, when ``rates`` is empty, these fractions of the best closed-loop throughput.
    rate_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    # Arrival times come from this seed: two runs offer the very same stream.
    seed: int = 20
    # Open-loop workers; 0: the concurrency of the best closed-loop point.
    workers: int = 0
    # --- windows and stability ---------------------------------------------------------------
    # Time at the start of every point that is not counted (sessions warm, queue settles).
    warmup_s: float = 0.5
    # One window lasts this long, and longer at low rates: see ``window_min_queries``.
    window_s: float = 1.0
    # A window lasts until it has had this many arrivals (at its rate), and the counted windows
    # together 15 % more than ``min_queries_p99``, up to ``max_window_s`` (30 s: 662 queries
    # at 25 req/s; slower rates cannot give a valid p99 and the knee search says so).
    window_min_queries: int = 100
    max_window_s: float = 30.0
    # A point is stable when its last ``stability_windows`` windows agree (see stability.py).
    stability_windows: int = 3
    # Throughput agreement: each window within this fraction of their mean (perf_analyzer's 10 %).
    stability_tolerance: float = 0.10
    # p99 agreement: each window's p99 within this fraction of their mean. Wider than the
    # throughput's: with 100-300 requests a window, a stationary M/D/1 queue at rho 0.6 already
    # has its window p99s more than 10 % apart about half the time (stability.py's docstring).
    p99_tolerance: float = 0.20
    # Windows per point at most (the retries cap): a point still not stable then is recorded
    # as unstable, never averaged in.
    max_windows: int = 6
    # After a window ends, how long its last requests may take to finish before the ones still
    # running are counted at their age so far (a lower bound: an overloaded point shows it).
    grace_s: float = 1.0
    # --- the knee ----------------------------------------------------------------------------
    # The latency bound: the knee is the highest Poisson rate whose p99 stays under it.
    p99_bound_ms: float = 20.0
    # The search's bracket, as fractions of the best closed-loop throughput (an open loop
    # cannot sustain more than the closed loop's ceiling): it starts at ``knee_start_fraction``,
    # halves while that fails, down to ``knee_low_fraction``; its top is ``knee_high_fraction``.
    knee_start_fraction: float = 0.5
    knee_low_fraction: float = 0.05
    knee_high_fraction: float = 1.0
    # Bisection steps after the bracket, at most, and stop when the bracket is this narrow
    # (fraction of its top).
    knee_steps: int = 6
    knee_resolution: float = 0.05
    # A point's p99 counts only with this many requests in its counted windows (MLPerf LoadGen's
    # early-stopping minimum for p99, stats.min_queries(99) = 662).
    min_queries_p99: int = field(default_factory=lambda: min_queries(99))
    # --- bounds ------------------------------------------------------------------------------
    # Requests one point may schedule, at most (bounds memory and time at absurd rates).
    max_requests_per_point: int = 200_000
    # The generator's saturation test: this many requests offered all at once to a null model.
    generator_requests: int = 20_000

    def __post_init__(self) -> None:
        positive = ("concurrency_per_cpu", "window_s", "window_min_queries",
                    "max_window_s", "stability_windows", "max_windows", "p99_bound_ms",
                    "knee_high_fraction", "knee_low_fraction", "knee_start_fraction",
                    "min_queries_p99",
                    "max_requests_per_point", "generator_requests")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"load setting {name} must be > 0, not {getattr(self, name)}")
        if self.max_windows < self.stability_windows:
            raise ValueError("load setting max_windows must be >= stability_windows")
        if not self.knee_low_fraction <= self.knee_start_fraction <= self.knee_high_fraction:
            raise ValueError("load settings need knee_low_fraction <= knee_start_fraction <= "
                             "knee_high_fraction")
        if any(r <= 0 for r in self.rates) or any(f <= 0 for f in self.rate_fractions):
            raise ValueError("load rates and rate_fractions must be > 0")

    def as_dict(self) -> dict:
        out = asdict(self)
        return {k: [list(v) for v in val] if k == "layouts" else
                list(val) if isinstance(val, tuple) else val for k, val in out.items()}


# Proposed sizes per profile (engine-core wires them to profiles.Profile). Times are for one
# variant on 2 CPUs: quick ~15-25 s, full ~3-5 min, edge bounded like quick but with longer
# windows at the few requests/s a Pi serves, smoke a second or two (tests only).
LOAD_PROFILES: dict[str, LoadSettings] = {
    "full": LoadSettings(),
    # quick: p99 from >= 150 queries (not LoadGen-valid: the record says so), no retries, the
    # bracket no lower than a quarter of the ceiling, a 2-step knee: <= 10 s a point.
    "quick": LoadSettings(warmup_s=0.3, window_s=0.5, window_min_queries=50, max_window_s=3.0,
                          max_windows=3, rate_fractions=(), knee_low_fraction=0.25,
                          knee_steps=2, knee_resolution=0.1, min_queries_p99=150,
                          generator_requests=5_000, concurrency_per_cpu=1),
    "edge": LoadSettings(warmup_s=1.0, window_s=2.0, window_min_queries=50, max_window_s=8.0,
                         max_windows=4, rate_fractions=(0.5,), knee_steps=3,
                         knee_resolution=0.1, generator_requests=5_000, p99_bound_ms=200.0,
                         min_queries_p99=150),
    "smoke": LoadSettings(warmup_s=0.1, window_s=0.2, window_min_queries=10, max_window_s=0.5,
                          max_windows=3, rate_fractions=(), knee_steps=1, knee_resolution=0.5,
                          min_queries_p99=20, generator_requests=500, concurrency_per_cpu=1),
}


def for_profile(name: str, **overrides) -> LoadSettings:
    return replace(LOAD_PROFILES[name], **overrides)
