"""plots/load.png: the load mode's latency-throughput curves (issue 20), one panel per host, one
colour per variant: p50 and p99 (from each request's scheduled arrival) of every open-loop point
against the throughput it achieved. A point that was not stable is drawn hollow: the knee search
never counted it. The p99 bound the search used is drawn, and so are the bound and the rate of
every knee target that applies to the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from . import serving
from .drawing import LEGEND_OUTSIDE, Plot, host_title, maybe_log, save
from .load import Host, Run
from .targets import Targets
from .verdict import applies

SEARCH_BOUND = "the knee search's p99 bound"


@dataclass(frozen=True)
class Series:
    label: str                                  # the variant, as the report names it
    points: tuple[serving.Point, ...]           # those with an achieved throughput


@dataclass(frozen=True)
class Line:
    label: str
    p99_ms: float
    rps: float | None = None                    # a knee target's rate, drawn upright


@dataclass(frozen=True)
class Panel:
    host: Host
    series: tuple[Series, ...]
    lines: tuple[Line, ...]


def panels(run: Run, targets: Targets) -> tuple[list[Panel], list[str]]:
    """One panel per ok host with a load curve, and what could not be drawn (with why)."""
    out, missing = [], []
    for host in (h for h in run.hosts if h.status == "ok"):
        series, bounds = [], []
        for rec in (r for r in host.records if r.ok and isinstance(r.data.get("load"), dict)):
            name = f"{host.name} / {run.label(rec)}"
            load, why = serving.group(rec.data)
            if load is None:
                missing.append(f"{name}: {why}")
                continue
            points = serving.points(load)
            drawn = tuple(p for p in points if p.achieved is not None)
            if len(drawn) < len(points):
                missing.append(f"{name}: {len(points) - len(drawn)} point(s) completed no "
                               "request in their windows (no achieved throughput)")
            if drawn:
                series.append(Series(run.label(rec), drawn))
            knee, _ = serving.knee(rec.data)
            if knee is not None and knee.bound_ms is not None:
                bounds.append(knee.bound_ms)
        if not series:
            continue
        lines = [Line(SEARCH_BOUND, b) for b in dict.fromkeys(bounds)]
        lines += [Line(f"{t.title}: {c.metric} >= {rps:g} req/s", c.bound_ms, rps)
                  for t in targets.targets if applies(host, t)
                  for c, rps in t.criteria if c.bound_ms is not None]
        out.append(Panel(host, tuple(series), tuple(lines)))
    return out, missing


def load_plot(run: Run, targets: Targets, path: Path) -> Plot | None:
    shown, missing = panels(run, targets)
    if not shown:
        return None
    fig = Figure(figsize=(10, 4.2 * len(shown) + 0.6), layout="constrained")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    drawn: list[tuple[str, str, float, float]] = []
    for ax, panel in zip(axes, shown):
        title = host_title(panel.host)
        values = []
        for k, s in enumerate(panel.series):
            xs = [p.achieved for p in s.points]
            for pct, style, marker in (("p50", "--", "o"), ("p99", "-", "s")):
                ys = [getattr(p, pct) for p in s.points]
                ax.plot(xs, [math.nan if y is None else y for y in ys], linestyle=style,
                        color=f"C{k}", linewidth=1.2, label=f"{s.label} {pct}")
                for stable in (True, False):
                    pts = [(x, y) for x, y, p in zip(xs, ys, s.points)
                           if y is not None and p.stable is stable]
                    if not pts:
                        continue
                    ax.scatter([x for x, _ in pts], [y for _, y in pts], marker=marker, s=30,
                               zorder=3, edgecolors=f"C{k}",
                               facecolors=f"C{k}" if stable else "none")
                    label = f"{s.label} {pct}{'' if stable else ' unstable'}"
                    drawn += [(title, label, float(x), float(y))
                              for x, y in ax.collections[-1].get_offsets()]
                    values += [y for _, y in pts]
        for j, line in enumerate(panel.lines):
            style = {"color": "#333333" if line.rps is None else f"C{len(panel.series) + j}",
                     "linestyle": ":" if line.rps is None else "-.", "linewidth": 1.4}
            drawn.append((title, f"bound: {line.label}",
                          0.0, float(ax.axhline(line.p99_ms, label=line.label,
                                                **style).get_ydata()[0])))
            values.append(line.p99_ms)
            if line.rps is not None:
                drawn.append((title, f"rate: {line.label}",
                              float(ax.axvline(line.rps, **style).get_xdata()[0]), 0.0))
        maybe_log(ax.set_yscale, values)
        ax.set_xlim(left=0)
        ax.set_xlabel("achieved throughput (requests/s)")
        ax.set_ylabel("latency from scheduled arrival (ms)")
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(**LEGEND_OUTSIDE)
    fig.suptitle(f"Latency under Poisson load, run {run.run_id}")
    save(fig, path)
    return Plot(path.name, "Latency under load",
                "Open-loop Poisson load: p50 (dashed, circles) and p99 (solid, squares) latency "
                "from each request's scheduled arrival, against the throughput achieved, per "
                "variant. Hollow: a point that did not settle (never counted for the knee). "
                "Dotted: the p99 bound of the knee search; dash-dot: a knee target's bound and "
                "rate.", missing=tuple(missing), drawn=tuple(drawn))
