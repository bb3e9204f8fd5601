"""The points of plots/tradeoff.png, the chart the study exists for (issue 21): p99 latency
against joules per inference and against SU per 1,000 inferences, one point per variant on each
host, labelled by host kind and variant, across the options (server CPU, server GPU, edge).

A point lacking a figure is never drawn at a stand-in value: it is listed as missing with the
reason (as is a host that failed, so a whole missing option shows too).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .columns import figure
from .cost_energy import BASES, Figure, cost_per_1000, energy_per_inference
from .load import Host, Record, Run

# The cost basis of the chart: the single-stream rate, the one the p99 (batch-1 latency) and
# the energy window (the single-sample loop) were measured at.
COST_BASIS = "single"
ENERGY, COST = "energy", "cost"
AXES = {
    ENERGY: "energy per inference (J)",
    COST: f"SU per 1000 inferences {BASES[COST_BASIS].what}",
}


@dataclass(frozen=True)
class Point:
    label: str          # "<host kind> / <variant>"
    x: float
    y: float            # p99 (ms)


@dataclass(frozen=True)
class Missing:
    axis: str           # ENERGY, COST, or "" for both (no p99, a failed host)
    label: str
    reason: str

    def text(self) -> str:
        where = {ENERGY: "not on the energy chart", COST: "not on the cost chart",
                 "": "not on either chart"}[self.axis]
        return f"{self.label}: {where}: {self.reason}"


@dataclass(frozen=True)
class Tradeoff:
    points: dict[str, list[Point]]
    missing: list[Missing]


def _kind(host: Host, record: Record) -> str:
    """The kind the record was measured as (a GPU node's CPU variants are cpu_server)."""
    kind = record.data.get("host_kind")
    return kind if isinstance(kind, str) and kind else host.kind


def _x(axis: str, host: Host, record: Record) -> Figure:
    if axis == ENERGY:
        return energy_per_inference(record.data)
    return cost_per_1000(host, record, COST_BASIS)


def tradeoff(run: Run) -> Tradeoff:
    """Every ok variant of every ok host, drawn on each axis where it has both figures."""
    pairs = [(h, r) for h in run.hosts if h.status == "ok" for r in h.records if r.ok]
    # A host's name only where two hosts of a kind would share a label.
    kinds = Counter(h.kind for h in run.hosts)
    points: dict[str, list[Point]] = {axis: [] for axis in AXES}
    missing = [Missing("", f"{h.kind} {h.name}", f"host failed: {h.reason}")
               for h in run.hosts if h.status == "failed"]
    for host, record in pairs:
        label = f"{_kind(host, record)} / {run.label(record)}"
        label += f" @ {host.name}" if kinds[host.kind] > 1 else ""
        p99 = figure("p99", record)
        if not isinstance(p99, (int, float)):
            missing.append(Missing("", label, "no p99 latency"))
            continue
        # As the table marks it: under LoadGen's minimum count for p99, drawn but flagged.
        valid = (record.data.get("latency_ms") or {}).get("valid") or {}
        label += " †" if valid.get("p99") is False else ""
        for axis in AXES:
            x = _x(axis, host, record)
            if x.value is None:
                missing.append(Missing(axis, label, x.reason or "no figure"))
            else:
                points[axis].append(Point(label, x.value, float(p99)))
    return Tradeoff(points, missing)
