"""A new metric is one place (issue 18, "What it must show"): a record field with its rule across
repeats (servebench_engine.record) plus one row of the report's column table
(servebench.report.columns). Both are added here in-process, nothing else is touched, and the
metric is seen in the merged record, report.md, report.html and the --compare table."""

from __future__ import annotations

import dataclasses
import json

from servebench.report import columns
from servebench.report.columns import COMPARE, REPORT, Column, field
from servebench_engine import record as engine_record
from servebench_engine import repeats

from .runs import record, write_run


@dataclasses.dataclass
class _WithThrowaway(engine_record.Record):
    throwaway_ms: float | None = engine_record.record_field(
        engine_record.NUMBER_OR_NULL, "float or null", rule="last",
        meaning="a metric that exists for this test only")


THROWAWAY = Column("throwaway_ms", "throwaway", field("throwaway_ms"), unit="ms",
                   where=frozenset({REPORT, COMPARE}))


def _one_place(monkeypatch) -> None:
    fields = dataclasses.fields(_WithThrowaway)
    monkeypatch.setattr(engine_record, "Record", _WithThrowaway)
    monkeypatch.setattr(engine_record, "FIELDS", fields)
    monkeypatch.setattr(repeats, "FIELDS", fields)
    monkeypatch.setattr(columns, "COLUMNS", columns.COLUMNS + (THROWAWAY,))


def _merged(variant: str, p50_ms: float, throwaway: list[float]) -> dict:
    """The record of ``variant`` made as the engine makes it: base_record, one filled-in record
    per repeat (each a fresh process), then repeats.merge by each field's rule."""
    run = {f.name: None for f in engine_record.FIELDS if f.metadata["from_run"]}
    parts = []
    for i, value in enumerate(throwaway):
        measured = record(variant, host="node", host_kind="cpu_server", p50_ms=p50_ms, seed=i,
                          scales=(1.0,))
        part = engine_record.base_record(variant, run={**run, **measured})
        part.update({k: v for k, v in measured.items() if k in part and k != "repeats"})
        part["info"] = {"minimums_met": {"latency": True, "batch": True}}
        part["throwaway_ms"] = value
        parts.append(part)
    return repeats.merge(parts, planned=len(parts))


def test_a_metric_added_in_one_place_shows_everywhere(tmp_path, report, monkeypatch):
    _one_place(monkeypatch)
    assert "throwaway_ms" in engine_record.json_schema()["properties"]
    assert "| `throwaway_ms` | float or null | the last repeat's |" in \
        engine_record.markdown_table()
    runs = []
    for run_id, values in (("A", [40.0, 41.5]), ("B", [44.0, 43.25])):
        merged = _merged("onnx-cpu", 3.2, values)
        assert merged["throwaway_ms"] == values[-1]          # its rule across repeats
        assert merged["repeats"]["count"] == 2
        runs.append(write_run(tmp_path, run_id, {"node": {"kind": "cpu_server",
                                                          "records": [merged]}}))
    a, b = runs
    assert json.loads((a / "node" / "onnx-cpu.json").read_text())["throwaway_ms"] == 41.5

    assert report(a).exit_code == 0
    md = (a / "report.md").read_text().split("## Variants", 1)[1].split("## Skipped")[0]
    header, row = [line for line in md.splitlines() if line.startswith("| ")]
    assert header.endswith("| providers | throwaway |") and row.endswith("| 41.5 |"), (header, row)
    html = (a / "report.html").read_text()
    assert "<th>throwaway</th></tr>" in html and '<td class="num">41.5</td></tr>' in html

    result = report("--compare", a, b)
    assert result.exit_code == 0, result.output
    assert "A throwaway 41.5 ms, B throwaway 43.2 ms" in result.stdout
    compare_md = (b / "compare" / "compare.md").read_text()
    assert "| A throwaway ms | B throwaway ms |" in compare_md and "| 41.5 | 43.2 |" in compare_md
