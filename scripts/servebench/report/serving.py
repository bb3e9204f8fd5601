"""The load mode's figures in a record (issue 20; the engine's ``load`` field, written by
servebench_engine.load_mode): the knee, the closed-loop ceiling and its layout, the generator's
own cost and the open-loop curve. Each is a value, or None with the reason; never a stand-in.

The knee is the highest Poisson arrival rate whose p99 (from each request's scheduled time)
stayed under the bound in the engine's search, on a stable point. Its p99 is LoadGen-valid
when the point held 662 requests or more (``knee.p99_valid``); a knee found at the search
bracket's top is a lower bound ("at least").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import formatting as fmt

NOT_RUN = "not run: bench-run --load-variants did not name this variant"
NOT_VALID = "†"          # as the percentile columns mark a p99 under LoadGen's query count
UNSTABLE = "unstable"
AT_LEAST = "≥"


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _count(value: Any) -> int:
    return int(value) if _number(value) else 0


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def group(data: dict) -> tuple[dict | None, str | None]:
    """(the record's load group, None), or (None, why it has no figures)."""
    load = data.get("load")
    if not isinstance(load, dict):
        return None, NOT_RUN
    if not isinstance(load.get("knee"), dict):
        return None, str(load.get("reason") or "the load group has no knee")
    return load, None


@dataclass(frozen=True)
class Point:
    """One open-loop point: what was offered, what was served, and its latency."""
    offered: float
    achieved: float | None
    p50: float | None
    p99: float | None
    count: int
    stable: bool
    valid: bool                  # p99 from at least LoadGen's 662 requests


def points(load: dict) -> list[Point]:
    """The open-loop points with a latency, by offered rate (a rate measured twice, once for
    the curve and once by the search, is one point: the measurements are the same stream)."""
    out: dict[float, Point] = {}
    listed = _dict(load.get("open_loop")).get("points")
    for p in map(_dict, listed if isinstance(listed, list) else []):
        lat = _dict(p.get("latency_ms"))
        if not _number(p.get("offered_rps")) or not _number(lat.get("p99")):
            continue
        out.setdefault(float(p["offered_rps"]), Point(
            float(p["offered_rps"]),
            float(p["achieved_rps"]) if _number(p.get("achieved_rps")) else None,
            float(lat["p50"]) if _number(lat.get("p50")) else None, float(lat["p99"]),
            _count(lat.get("count")), p.get("stable") is True,
            _dict(lat.get("valid")).get("p99") is True))
    return sorted(out.values(), key=lambda q: q.offered)


@dataclass(frozen=True)
class Knee:
    rps: float | None            # None: the search found none (``why`` says so)
    bound_ms: float | None       # the p99 bound the search used
    p99_ms: float | None
    queries: int
    valid: bool
    stable: bool
    lower_bound: bool            # found at the bracket's top: the knee is at least rps
    found: str = ""              # how the search ended (the engine's words)

    @property
    def marks(self) -> list[str]:
        return ([NOT_VALID] if not self.valid else []) + ([UNSTABLE] if not self.stable else [])


def knee(data: dict) -> tuple[Knee | None, str | None]:
    """The knee of a record, or (None, why the record has no load figures)."""
    load, why = group(data)
    if load is None:
        return None, why
    k = load["knee"]
    bound = k.get("p99_bound_ms", load.get("bound_ms"))
    bound = float(bound) if _number(bound) else None
    if not _number(k.get("knee_rps")) or not k["knee_rps"]:
        return Knee(None, bound, None, 0, False, False, False,
                    str(k.get("found") or "the search found none")), None
    rps = float(k["knee_rps"])
    at = next((p for p in points(load) if math.isclose(p.offered, rps, rel_tol=1e-6)), None)
    return Knee(rps, bound, k.get("p99_ms") if _number(k.get("p99_ms")) else None,
                _count(k.get("queries")), k.get("p99_valid") is True,
                at is not None and at.stable, str(k.get("found", "")).startswith("at the bracket"),
                str(k.get("found") or "")), None


def _short(reason: str) -> str:
    return reason.split(": ", 1)[0]


def knee_text(data: dict) -> str:
    """``437.5 (p99 ≤ 20 ms)``, with ≥ for a lower bound and † / unstable marks; n/a (why)."""
    k, why = knee(data)
    if k is None or k.rps is None:
        return f"{fmt.NA} ({_short(why) if k is None else 'no knee: ' + _short(k.found)})"
    bound = f"p99 ≤ {fmt.sig(k.bound_ms)} ms" if k.bound_ms is not None else "bound unknown"
    head = f"{AT_LEAST} " if k.lower_bound else ""
    return " ".join([f"{head}{fmt.sig(k.rps)} ({bound})", *k.marks])


def knee_rps(data: dict) -> float | None:
    k, _ = knee(data)
    return k.rps if k else None


def ceiling(data: dict) -> float | None:
    load, _ = group(data)
    value = (load or {}).get("best_closed_loop_rps")
    return float(value) if _number(value) else None


def ceiling_text(data: dict) -> str:
    """The best closed-loop req/s and the layout that reached it."""
    load, why = group(data)
    value = ceiling(data)
    if load is None or value is None:
        return f"{fmt.NA} ({_short(why or 'no closed-loop point')})"
    lay = _dict(load.get("layout"))
    best = _dict(_dict(load.get("closed_loop")).get("best"))
    parts = []
    if _count(lay.get("sessions")):
        threads = _count(lay.get("intra_op_threads")) or "?"
        parts.append(f"{_count(lay['sessions'])} session(s) × {threads} thread(s)")
    if _count(best.get("concurrency")):
        parts.append(f"{_count(best['concurrency'])} in flight")
    mark = "" if lay.get("ceiling_stable", best.get("stable")) is not False else f" {UNSTABLE}"
    return f"{fmt.sig(value)}{mark}" + (f" ({', '.join(parts)})" if parts else "")


def share(data: dict) -> float | None:
    load, _ = group(data)
    value = (load or {}).get("knee_share_of_ceiling")
    return float(value) if _number(value) else None


def share_text(data: dict) -> str:
    value = share(data)
    if value is None:
        k, why = knee(data)
        return f"{fmt.NA} ({_short(why) if k is None else 'no knee'})"
    return f"{value * 100:.0f} %"


def generator(data: dict) -> dict:
    load, _ = group(data)
    return _dict((load or {}).get("generator"))


def overhead_text(data: dict) -> str:
    """The generator's latency on a null model at the highest rate used: p50 / p99 ms."""
    load, why = group(data)
    over = _dict(generator(data).get("overhead_ms"))
    if load is None or not (_number(over.get("p50")) and _number(over.get("p99"))):
        return f"{fmt.NA} ({_short(why or 'not measured')})"
    rate = generator(data).get("rate_rps")
    at = f" at {fmt.sig(rate)} req/s" if _number(rate) else ""
    return f"{fmt.sig(over['p50'])} / {fmt.sig(over['p99'])}{at}"


def max_issue(data: dict) -> float | None:
    value = generator(data).get("max_issue_rps")
    return float(value) if _number(value) else None


def max_issue_text(data: dict) -> str:
    load, why = group(data)
    value = max_issue(data)
    return fmt.sig(value) if value is not None else f"{fmt.NA} ({_short(why or 'not measured')})"
