"""The one column table of a run's figures: report.md, report.html, the plots and --compare all
read it (issue 18). A new metric is one field in the record and one row here.

Each column says what it is called, how to read its figure from a record, how its text reads,
and where it is shown:

- ``REPORT``: a column of the report's variant table (report.md and report.html);
- ``COMPARE``: A and B side by side in each --compare row (and its printed lines);
- ``LATENCY_PLOT``: a bar per variant in plots/latency.png (the latency percentiles).

plots/throughput.png draws the ``batch`` column, plots/size_vs_latency.png ``size`` against
``p50``, read through ``figure`` below, and plots/tradeoff.png ``p99`` against ``energy`` and
``cost_single`` (through ``value``: a cost needs the host).

A column with ``only_with`` is shown only in a run where some record has that figure (the cost
at the load mode's knee, and the load mode's own columns, appear once records carry a ``load``
group; there a record without one reads n/a with the reason). A ``ratio`` column shows B / A in
--compare beside A and B (the knee and the ceiling: one search each, no interval, never gated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import formatting as fmt
from . import serving
from .cost_energy import BASES, Figure, cost_per_1000, energy_per_inference
from .load import Host, Record, read_at as field
from .targets import BYTES_PER_MB

REPORT, COMPARE, LATENCY_PLOT = "report", "compare", "latency plot"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    # The figure from a record's data: a number for a numeric column, None when absent.
    figure: Callable[[dict], Any] = lambda data: None
    # The report's text of a (host, record); by default the figure in significant digits.
    text: Callable[[Host, Record], str] | None = None
    unit: str = ""                 # after the figure where it stands alone (--compare)
    numeric: bool = True           # right-aligned in report.html
    where: frozenset[str] = frozenset({REPORT})
    # The figure of a (host, record) where it needs the host (a cost): then ``figure`` is unused.
    of_host: Callable[[Host, Record], Any] | None = None
    # Shown only when a record's data gives this a value (None: always shown).
    only_with: Callable[[dict], Any] | None = None
    ratio: bool = False            # --compare shows B / A of it

    def value(self, host: Host, record: Record) -> Any:
        """The figure of ``record`` on ``host`` (None when absent)."""
        return self.of_host(host, record) if self.of_host else self.figure(record.data)

    def cell(self, host: Host, record: Record) -> str:
        if self.text is not None:
            return self.text(host, record)
        return fmt.sig(self.value(host, record))

    def brief(self, record: Record | None) -> str:
        """The figure alone, as --compare shows it (n/a for a record that is not ok)."""
        value = self.figure(record.data) if record is not None and record.ok else None
        return fmt.sig(value if isinstance(value, (int, float)) else None)


def _stats(data: dict, name: str) -> dict:
    stats = data.get(name)
    return stats if isinstance(stats, dict) else {}


def _percentile(p: str) -> Callable[[Host, Record], str]:
    """The value, marked † when not valid (under LoadGen's minimum query count)."""
    def text(host: Host, rec: Record) -> str:
        lat = _stats(rec.data, "latency_ms")
        value = fmt.sig(lat.get(p))
        return f"{value} †" if (lat.get("valid") or {}).get(p) is False else value

    return text


def _interval(ci: Any) -> str:
    return (f"[{fmt.sig(ci[0])}, {fmt.sig(ci[1])}]"
            if isinstance(ci, (list, tuple)) and len(ci) == 2 else fmt.NA)


def _mean(host: Host, rec: Record) -> str:
    lat = _stats(rec.data, "latency_ms")
    return (f"{fmt.sig(lat['mean'])} ± {fmt.sig(lat.get('stdev'))}"
            if lat.get("mean") is not None else fmt.NA)


def _noisy(host: Host, rec: Record) -> str:
    noisy = _stats(rec.data, "latency_ms").get("noisy")
    return fmt.NA if noisy is None else ("noisy" if noisy else "no")


def _repeats(host: Host, rec: Record) -> str:
    rep = rec.data.get("repeats")
    if not isinstance(rep, dict) or not rep.get("count"):
        return fmt.NA
    if rep["count"] == 1 or rep.get("spread") is None:
        return str(rep["count"])
    verdict = "replicable" if rep.get("replicable") else "NOT replicable"
    return f"{rep['count']}, spread {rep['spread']:.3f}×, {verdict}"


def _providers(host: Host, rec: Record) -> str:
    providers = rec.data.get("providers") or {}
    active = providers.get("active") or []
    requested = providers.get("requested") or []
    prov = ", ".join(active)
    if not active and requested:
        prov = f"asked {', '.join(requested)}"
    elif requested and list(requested) != list(active):
        prov = f"asked {', '.join(requested)}; ran {prov}"
    return prov


def _size_mb(data: dict) -> float | None:
    size = data.get("model_size_bytes")
    return None if size is None else size / BYTES_PER_MB


def _text(read: Callable[[Host, Record], Any]) -> Callable[[Host, Record], str]:
    return lambda host, rec: str(read(host, rec))


def _shown(fig: Figure, tail: str) -> str:
    """A figure with what qualifies it, or n/a with the short reason."""
    if fig.value is None:
        return f"{fmt.NA} ({fig.short})" if fig.reason else fmt.NA
    return f"{fmt.sig(fig.value)}{tail}"


def _cost(basis: str) -> Column:
    def read(host: Host, rec: Record) -> float | None:
        return cost_per_1000(host, rec, basis).value

    def text(host: Host, rec: Record) -> str:
        fig = cost_per_1000(host, rec, basis)
        return _shown(fig, "" if fig.upper is None else f" (up to {fmt.sig(fig.upper)})")

    return Column(f"cost_{basis}", f"SU per 1000 ({BASES[basis].name})", text=text, unit="SU",
                  of_host=read, only_with=BASES["knee"].rate if basis == "knee" else None)


def _energy(host: Host, rec: Record) -> str:
    fig = energy_per_inference(rec.data)
    return _shown(fig, f" ({fig.label})" if fig.label else "")


def _load_columns() -> tuple[Column, ...]:
    """The load mode's figures (report.serving), shown once a record of the run has a load group."""
    def of(read: Callable[[dict], str]) -> Callable[[Host, Record], str]:
        return lambda host, rec: read(rec.data)

    has_load = field("load")
    both = frozenset({REPORT, COMPARE})
    return (
        # No unit: the headers say it, in --compare too.
        Column("knee", "knee req/s", serving.knee_rps, of(serving.knee_text),
               where=both, only_with=has_load, ratio=True),
        Column("ceiling", "ceiling req/s (closed loop)", serving.ceiling,
               of(serving.ceiling_text), where=both, only_with=has_load, ratio=True),
        Column("knee_share", "knee / ceiling", serving.share, of(serving.share_text),
               only_with=has_load),
        Column("generator_overhead", "generator overhead p50 / p99 ms",
               lambda d: (serving.generator(d).get("overhead_ms") or {}).get("p99"),
               of(serving.overhead_text), "ms", only_with=has_load),
        Column("generator_max", "generator max req/s", serving.max_issue,
               of(serving.max_issue_text), "req/s", only_with=has_load),
    )


COLUMNS: tuple[Column, ...] = (
    Column("host", "host", text=lambda h, r: h.name, numeric=False),
    Column("variant", "variant", text=lambda h, r: r.variant, numeric=False),
    Column("status", "status", text=lambda h, r: r.status, numeric=False),
    *(Column(p, p, field("latency_ms", p), _percentile(p), "ms",
             where=frozenset({REPORT, LATENCY_PLOT} | ({COMPARE} if p == "p50" else set())))
      for p in ("p50", "p95", "p99")),
    Column("mean", "mean ± stdev", field("latency_ms", "mean"), _mean, "ms"),
    Column("median_ci95", "median CI95", field("latency_ms", "median_ci95"),
           lambda h, r: _interval(_stats(r.data, "latency_ms").get("median_ci95"))),
    Column("p99_ci95", "p99 CI95", field("latency_ms", "ci95", "p99"),
           lambda h, r: _interval((_stats(r.data, "latency_ms").get("ci95") or {}).get("p99"))),
    Column("count", "samples", field("latency_ms", "count"),
           _text(lambda h, r: _stats(r.data, "latency_ms").get("count", fmt.NA))),
    Column("noisy", "noisy", field("latency_ms", "noisy"), _noisy, numeric=False),
    Column("repeats", "repeats", field("repeats", "count"), _repeats, numeric=False),
    Column("fps_p50", "FPS (1000/p50)", field("single_fps_from_p50"), unit="FPS"),
    Column("fps_trials", "FPS (trials/time)", field("single_fps_trials"), unit="FPS"),
    Column("batch", "batch img/s", field("batch_throughput"), unit="img/s"),
    Column("energy", "J per inference", lambda d: energy_per_inference(d).value, _energy, "J"),
    *(_cost(basis) for basis in BASES),
    *_load_columns(),
    Column("cold", "cold start ms", field("cold_start_ms"), unit="ms"),
    Column("size", "size", _size_mb, lambda h, r: fmt.size(r.data.get("model_size_bytes")),
           "MB"),
    Column("accuracy", "accuracy", field("accuracy", "value"),
           lambda h, r: fmt.accuracy(r.data.get("accuracy"))),
    Column("route", "route", field("route"), lambda h, r: r.data.get("route") or "",
           numeric=False),
    Column("providers", "providers", text=_providers, numeric=False),
)
BY_KEY = {c.key: c for c in COLUMNS}


def shown(where: str, records: list[Record] | None = None) -> tuple[Column, ...]:
    """The columns shown in ``where`` (REPORT, COMPARE, LATENCY_PLOT), in table order; an
    ``only_with`` column only when one of ``records`` has its figure."""
    def present(c: Column) -> bool:
        return c.only_with is None or any(c.only_with(r.data) is not None
                                          for r in records or [])

    return tuple(c for c in COLUMNS if where in c.where and present(c))


def _ratio(col: Column, a: Record | None, b: Record | None) -> str:
    va, vb = (col.figure(r.data) if r is not None and r.ok else None for r in (a, b))
    ok = all(isinstance(v, (int, float)) and v > 0 for v in (va, vb))
    return f"{vb / va:.3f}" if ok else fmt.NA


def compare_cells(a: Record | None, b: Record | None,
                  records: list[Record]) -> list[tuple[str, str, str]]:
    """(heading, text, unit) of each figure --compare shows of a row (A and B of each COMPARE
    column among ``records``, and B / A of a ``ratio`` column); the unit with its space."""
    cells = []
    for col in shown(COMPARE, records):
        unit = f" {col.unit}" if col.unit else ""
        cells += [(f"A {col.header}", col.brief(a), unit), (f"B {col.header}", col.brief(b), unit)]
        if col.ratio:
            cells.append((f"B/A {col.header}", _ratio(col, a, b), ""))
    return cells


def figure(key: str, record: Record) -> Any:
    """The figure of column ``key`` in ``record`` (None when absent)."""
    return BY_KEY[key].figure(record.data)


def variant_row(host: Host, record: Record, records: list[Record]) -> list[dict]:
    """The report's cells of one record (among the run's ``records``): its text and whether it
    is a number."""
    return [{"text": c.cell(host, record), "numeric": c.numeric}
            for c in shown(REPORT, records)]
