"""What every plot of the report shares: the Plot it returns, the Agg canvas it is saved with,
the log-axis rule and the legend's place. We draw on `matplotlib.figure.Figure` directly: no
pyplot global state, no display."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .load import Host

DPI = 110
# A log axis once the values span more than this factor, so the small ones stay readable.
LOG_SPAN = 30
LEGEND_OUTSIDE = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}


@dataclass(frozen=True)
class Plot:
    name: str          # file name under plots/
    title: str
    caption: str
    # What the chart could not draw, one line each (listed under it in the report).
    missing: tuple[str, ...] = ()
    # What it drew, read back from its axes: (axis title, label, x, y) per point.
    drawn: tuple[tuple[str, str, float, float], ...] = ()


def maybe_log(axis_setter, values: list[float]) -> None:
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        axis_setter("log")


def host_title(host: Host) -> str:
    return f"{host.name} ({host.kind})"


def save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
