"""What a (host, record) costs and uses: SU per 1,000 inferences and joules per inference, each
a number or None with the reason, never a stand-in value (issue 21).

Cost comes from servebench.cost, priced by the host's ``node_type`` and ``site`` as run.json
records them (chi-up's inventory hostvars), at one of three rates (``BASES``): the measured
batch throughput, the single-stream rate (1000 / p50), and the load mode's knee where a record
carries one (``load.knee.knee_rps``). Energy is the engine's meter figure in the record's
``energy`` field (servebench_engine.energy): shown only where the meter called it ``valid``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import cost
from .load import Host, Record, read_at


@dataclass(frozen=True)
class Basis:
    key: str
    name: str                          # as a column header says it
    what: str                          # the rate, in words
    rate: Callable[[dict], Any]        # inferences/s from a record's data
    absent: str                        # why there is no rate, when the record has none


BASES = {b.key: b for b in (
    Basis("batch", "batch", "at the measured batch throughput", read_at("batch_throughput"),
          "no measured batch throughput"),
    Basis("single", "1000/p50", "at the single-stream rate (1000 / p50)",
          read_at("single_fps_from_p50"), "no single-stream rate (no p50)"),
    Basis("knee", "knee", "at the load mode's knee (highest rate whose p99 meets the bound)",
          read_at("load", "knee", "knee_rps"), "no load-mode knee in the record"),
)}


@dataclass(frozen=True)
class Figure:
    value: float | None
    reason: str | None = None          # why value is None, in full
    label: str | None = None           # energy: its source; cost: the upper figure, if any
    upper: float | None = None         # cost on the dearest node of the type (su_max)

    @property
    def short(self) -> str:
        """The reason as a table cell shows it: the part before its explanation (``: ...`` or
        `` (...)``); the whole one is listed under the chart."""
        return re.split(r": | \(", self.reason or "", maxsplit=1)[0]


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


_TABLES: dict[tuple[str, int], cost.RateTable] = {}


def _table() -> cost.RateTable:
    """The rate table, read once per version of the file (a report reads it for every cell)."""
    path = cost.default_rates_path()
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        stamp = -1  # load_rates says why, in one line
    key = (str(path), stamp)
    if key not in _TABLES:
        _TABLES.clear()
        _TABLES[key] = cost.load_rates(path)
    return _TABLES[key]


def cost_per_1000(host: Host, record: Record, basis: str) -> Figure:
    """SU per 1,000 inferences of ``record`` on ``host`` at ``basis`` (a key of BASES)."""
    how = BASES[basis]
    if not record.ok:
        return Figure(None, f"the variant is {record.status}")
    if not host.node_type or not host.site:
        if host.kind == "local":
            return Figure(None, "not a testbed node: localhost has no node type or site to price")
        return Figure(None, f"no node type and site recorded for {host.name}: run.json "
                            "names none (a node reserved by name, or collected before issue 21)")
    rate = how.rate(record.data)
    if not _number(rate) or rate == 0:
        return Figure(None, how.absent)
    priced = cost.cost_per_1000(rate, host.node_type, host.site, _table())
    if priced["figure"] is None:
        return Figure(None, priced["reason"])
    return Figure(priced["figure"], None, priced.get("source"), priced.get("su_max"))


def energy_per_inference(data: dict) -> Figure:
    """Joules per inference from a record's ``energy`` figure, labelled by its source."""
    energy = data.get("energy")
    if not isinstance(energy, dict):
        return Figure(None, "not measured: the record has no energy figure")
    source = energy.get("source") if isinstance(energy.get("source"), str) else None
    if energy.get("valid") is not True:
        return Figure(None, str(energy.get("reason") or "the meter marked the figure not valid"),
                      source)
    value = energy.get("joules_per_inference")
    if not _number(value):
        return Figure(None, f"joules_per_inference is {ascii(value)[:40]}, not a figure", source)
    return Figure(float(value), None, source)
