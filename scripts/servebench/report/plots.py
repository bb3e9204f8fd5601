"""PNG plots of a run: latency percentiles, batch throughput, size against latency, and p99
against energy and cost (report.tradeoff's points).

Only `ok` records of `ok` hosts are plotted (skipped and failed variants are listed in the report
instead). Target thresholds are drawn as lines, each target in its own colour. We draw on
`matplotlib.figure.Figure` with the Agg canvas directly: no pyplot global state, no display.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .load import Host, Record, Run
from .columns import LATENCY_PLOT, figure, shown
from .drawing import (LEGEND_OUTSIDE, Plot, host_title as _host_title, maybe_log as _maybe_log,
                      save as _save)
from .load_plot import load_plot
from .targets import Targets
from .tradeoff import AXES, tradeoff
from .verdict import applies

# One colour per column the table shows in the latency plot (columns.LATENCY_PLOT), in order.
BAR_COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b")
TARGET_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
TARGET_STYLES = ("--", "-.", ":", (0, (5, 2, 1, 2)))
HOST_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _plotted(run: Run) -> list[tuple[Host, list[Record]]]:
    groups = []
    for host in run.hosts:
        ok = [r for r in host.records if r.ok] if host.status == "ok" else []
        if ok:
            groups.append((host, ok))
    return groups


def _target_lines(targets: Targets, hosts: list[Host], key: str) -> list[tuple[str, float, dict]]:
    """(label, threshold, line style) of each target with criterion `key` that applies to any of
    `hosts`."""
    lines = []
    for i, target in enumerate(targets.targets):
        if not any(applies(h, target) for h in hosts):
            continue
        for criterion, value in target.criteria:
            if criterion.key == key:
                label = f"{target.title}: {criterion.metric} {criterion.symbol} {value:g} {criterion.unit}"
                style = {"color": TARGET_COLOURS[i % len(TARGET_COLOURS)],
                         "linestyle": TARGET_STYLES[i % len(TARGET_STYLES)], "linewidth": 1.6}
                lines.append((label, value, style))
    return lines


def _hbar_figure(groups, nbars: int) -> tuple[Figure, list]:
    heights = [max(1.6, max(0.3, 0.22 * nbars) * len(recs) + 1.0) for _, recs in groups]
    fig = Figure(figsize=(10, sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
    return fig, list(axes)


def latency_plot(run: Run, targets: Targets, path: Path) -> Plot | None:
    groups = _plotted(run)
    if not groups:
        return None
    bars = shown(LATENCY_PLOT)
    fig, axes = _hbar_figure(groups, len(bars))
    width = 0.8 / len(bars)
    for ax, (host, records) in zip(axes, groups):
        values = []
        for j, column in enumerate(bars):
            xs = [column.figure(r.data) for r in records]
            ys = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(records))]
            ax.barh(ys, [x or 0 for x in xs], height=width,
                    color=BAR_COLOURS[j % len(BAR_COLOURS)], label=column.header)
            values += [x for x in xs if x]
        lines = _target_lines(targets, [host], "p50_ms_below")
        for label, value, style in lines:
            ax.axvline(value, label=label, **style)
        _maybe_log(ax.set_xscale, values + [v for _, v, _ in lines])
        ax.set_yticks(range(len(records)), [run.label(r) for r in records])
        ax.invert_yaxis()
        ax.set_xlabel("single-sample latency (ms)")
        ax.set_title(_host_title(host), loc="left", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(**LEGEND_OUTSIDE)
    fig.suptitle(f"Single-sample latency percentiles, run {run.run_id}")
    _save(fig, path)
    return Plot(path.name, "Latency percentiles",
                "p50, p95 and p99 single-sample latency per variant (lower is better); "
                "lines: the p50 targets that apply to the host.")


def throughput_plot(run: Run, targets: Targets, path: Path) -> Plot | None:
    groups = _plotted(run)
    if not groups:
        return None
    fig, axes = _hbar_figure(groups, 1)
    for ax, (host, records) in zip(axes, groups):
        xs = [figure("batch", r) for r in records]
        ax.barh(range(len(records)), [x or 0 for x in xs], height=0.6, color="#1f77b4")
        for i, x in enumerate(xs):
            ax.annotate("n/a" if x is None else f"{x:,.0f}", (x or 0, i), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=8)
        lines = _target_lines(targets, [host], "batch_img_per_s_at_least")
        for label, value, style in lines:
            ax.axvline(value, label=label, **style)
        ax.set_yticks(range(len(records)), [run.label(r) for r in records])
        ax.invert_yaxis()
        batch = {r.data.get("batch_size") for r in records} - {None}
        ax.set_xlabel(f"batch-{'/'.join(map(str, sorted(batch))) or '?'} throughput (images/s)")
        ax.set_title(_host_title(host), loc="left", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if lines:
            ax.legend(**LEGEND_OUTSIDE)
    fig.suptitle(f"Batch throughput, run {run.run_id}")
    _save(fig, path)
    return Plot(path.name, "Batch throughput",
                "Images per second at the batch size shown (higher is better); "
                "lines: the throughput targets that apply to the host.")


# Candidate label offsets (points) around a scatter point, tried in order until one is free:
# beside the point at its own height first, so a label reads as belonging to its point.
_LABEL_OFFSETS = ((7, 0, "left"), (-7, 0, "right"), (7, 10, "left"), (-7, 10, "right"),
                  (7, -10, "left"), (-7, -10, "right"), (7, 20, "left"), (-7, 20, "right"),
                  (7, -20, "left"), (-7, -20, "right"))


def _place_labels(ax, points: list[tuple[float, float, str]]) -> None:
    """Annotate points, taking for each label the first candidate offset whose rough box stays
    inside the axes and clear of the labels already placed; good enough for a dozen variants,
    with no extra dependency."""
    fig = ax.figure
    FigureCanvasAgg(fig)
    fig.canvas.draw()  # fixes the transforms so data can be mapped to pixels
    frame = ax.get_window_extent()
    px_per_pt = fig.dpi / 72
    placed: list[tuple[float, float, float, float]] = []
    for x, y, text in points:
        px, py = ax.transData.transform((x, y))
        w, h = 4.6 * len(text) * px_per_pt, 10 * px_per_pt

        def box(dx: float, dy: float, ha: str) -> tuple[float, float, float, float]:
            x0 = px + dx * px_per_pt - (w if ha == "right" else 0)
            y0 = py + dy * px_per_pt - h / 2
            return (x0, y0, x0 + w, y0 + h)

        def free(b: tuple[float, float, float, float]) -> bool:
            inside = frame.x0 <= b[0] and b[2] <= frame.x1 and frame.y0 <= b[1] and b[3] <= frame.y1
            return inside and not any(b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]
                                      for o in placed)

        dx, dy, ha = next((c for c in _LABEL_OFFSETS if free(box(*c))), _LABEL_OFFSETS[0])
        placed.append(box(dx, dy, ha))
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha,
                    va="center", fontsize=7.5)


def size_latency_plot(run: Run, targets: Targets, path: Path) -> Plot | None:
    groups = _plotted(run)
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax = fig.subplots()
    points = []
    many_hosts = len(groups) > 1
    for k, (host, records) in enumerate(groups):
        pts = [(figure("size", r), figure("p50", r), run.label(r)) for r in records
               if figure("size", r) is not None and figure("p50", r)]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=40, zorder=3,
                   marker=HOST_MARKERS[k % len(HOST_MARKERS)], label=_host_title(host))
        points += [(x, y, f"{v} @ {host.name}" if many_hosts else v) for x, y, v in pts]
    if not points:
        return None
    hosts = [h for h, _ in groups]
    widest = max(p[0] for p in points)
    for key, draw in (("p50_ms_below", ax.axhline), ("model_size_mb_below", ax.axvline)):
        for label, value, style in _target_lines(targets, hosts, key):
            draw(value, label=label, **style)
            widest = max(widest, value) if draw is ax.axvline else widest
    _maybe_log(ax.set_yscale, [p[1] for p in points])
    # Room on the right for the labels of the largest models and for the size limit.
    ax.set_xlim(0, widest * 1.3)
    ax.set_xlabel("served model size (MB, 1 MB = 10^6 bytes)")
    ax.set_ylabel("p50 single-sample latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend(**LEGEND_OUTSIDE)
    ax.set_title(f"Model size against p50 latency, run {run.run_id}")
    _place_labels(ax, sorted(points, key=lambda p: (p[1], p[0])))
    _save(fig, path)
    return Plot(path.name, "Size against latency",
                "Each point is one variant on one host; lower left is smaller and faster. "
                "Lines: the size and p50 targets.")


def tradeoff_plot(run: Run, targets: Targets, path: Path) -> Plot | None:
    if not _plotted(run):
        return None
    data = tradeoff(run)
    fig = Figure(figsize=(13, 6.5), layout="constrained")
    axes = fig.subplots(1, len(AXES), sharey=True)
    drawn = []
    # One marker and colour per host kind on both axes.
    kinds = list(dict.fromkeys(p.label.split(" / ", 1)[0] for axis in AXES
                               for p in data.points[axis]))
    for ax, (axis, title) in zip(axes, AXES.items()):
        points = data.points[axis]
        for k, kind in enumerate(kinds):
            mine = [p for p in points if p.label.startswith(f"{kind} / ")]
            if not mine:
                continue
            ax.scatter([p.x for p in mine], [p.y for p in mine], s=40, zorder=3, label=kind,
                       marker=HOST_MARKERS[k % len(HOST_MARKERS)], color=f"C{k}")
            offsets = ax.collections[-1].get_offsets()
            drawn += [(title, p.label, float(x), float(y)) for p, (x, y) in zip(mine, offsets)]
        ax.set_xlabel(title)
        ax.grid(alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, "no variant has this figure:\nsee the list under the chart",
                    transform=ax.transAxes, ha="center", va="center", fontsize=10)
            continue
        _maybe_log(ax.set_xscale, [p.x for p in points])
        _maybe_log(ax.set_yscale, [p.y for p in points])
        ax.margins(x=0.25, y=0.1)  # room for the labels of the outermost points
        if ax.get_xscale() == "linear":
            ax.set_xlim(left=0)    # no joule or SU below zero
        if ax.get_yscale() == "linear":
            ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="best")
        _place_labels(ax, sorted(((p.x, p.y, p.label) for p in points),
                                 key=lambda p: (p[1], p[0])))
    axes[0].set_ylabel("p99 single-sample latency (ms)")
    fig.suptitle(f"p99 latency against energy and cost, run {run.run_id}")
    _save(fig, path)
    return Plot(path.name, "Latency, energy and cost",
                "Each point is one variant on one host, labelled by host kind; lower left is "
                "faster and cheaper. Energy: the engine's meter over the single-sample loop. "
                f"Cost: {AXES['cost']}, in Chameleon service units (SU) from the rate table. "
                "† p99 under LoadGen's minimum sample count.",
                missing=tuple(m.text() for m in data.missing), drawn=tuple(drawn))


def compare_plot(comparison, threshold: float | None, path: Path) -> bool:
    """B / A with its 95 % interval per compared row (report.compare); False if none."""
    rows = [r for r in comparison.rows if r.ratio is not None]
    if not rows:
        return False
    fig = Figure(figsize=(10, max(2.5, 0.35 * len(rows) + 1.4)), layout="constrained")
    ax = fig.subplots()
    colours = {"slower": "#d62728", "faster": "#2ca02c"}
    for i, r in enumerate(rows):
        lo, hi = r.ratio.ci
        ax.errorbar([r.ratio.estimate], [i], xerr=[[r.ratio.estimate - lo], [hi - r.ratio.estimate]],
                    fmt="o" if r.ratio.gated else "s", capsize=3,
                    color=colours.get(r.ratio.call, "#555555"))
    ax.axvline(1.0, color="#333333", linewidth=1)
    if threshold is not None:
        ax.axvspan(1.0, 1.0 + threshold, color="#ffcc80", alpha=0.4,
                   label=f"within the {threshold * 100:g} % gate")
        ax.legend(**LEGEND_OUTSIDE)
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -0.6)     # first row on top, half a row of margin
    ax.set_xlabel("B / A median latency (above 1: B slower); bars: 95 % interval, "
                  "squares: one repeat each (not gated)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{comparison.run_b.run_id} (B) against {comparison.run_a.run_id} (A)",
                 fontsize=10)
    _save(fig, path)
    return True


PLOTS = {
    "latency.png": latency_plot,
    "throughput.png": throughput_plot,
    "size_vs_latency.png": size_latency_plot,
    "tradeoff.png": tradeoff_plot,
    "load.png": load_plot,
}
PLOT_NAMES = tuple(PLOTS)


def write_plots(run: Run, targets: Targets, plots_dir: Path) -> list[Plot]:
    """Write every plot that has data into `plots_dir`; returns those written."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    made = (draw(run, targets, plots_dir / name) for name, draw in PLOTS.items())
    return [p for p in made if p is not None]

