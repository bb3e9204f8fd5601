"""The one column table (issue 18, item 2): report.md, report.html and --compare show what
servebench.report.columns lists, in its order, and a row added there shows in all three with no
other change."""

from __future__ import annotations

import json
import re

from servebench.report import columns
from servebench.report.columns import COMPARE, REPORT, Column, field, shown

from .runs import local_run, record, write_run


def _variants_table(md: str) -> list[str]:
    section = md.split("## Variants", 1)[1].split("## Skipped", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_the_variant_tables_are_the_column_table(tmp_path, report):
    run = local_run(tmp_path / "results")
    assert report(run).exit_code == 0
    heads = [c.header for c in shown(REPORT)]
    assert len(heads) == 23
    header, *rows = _variants_table((run / "report.md").read_text())
    assert header == "| " + " | ".join(heads) + " |"
    assert rows and all(row.count(" | ") == len(heads) - 1 for row in rows)
    html = (run / "report.html").read_text()
    table = html.split("<h2>Variants</h2>", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<th>(.*?)</th>", table) == heads
    first = re.search(r"<tr>(<td.*?)</tr>", table).group(1)
    numeric = ["num" in cell for cell in re.findall(r"<td[^>]*>", first)]
    assert numeric == [c.numeric for c in shown(REPORT)]


def _with_throwaway(run, values):
    """Give each record of ``run`` the field the throwaway column reads."""
    records = [p for p in sorted(run.glob("node/*.json"))
               if p.name not in ("suite.json", "host_status.json")]
    for path, value in zip(records, values, strict=True):
        doc = json.loads(path.read_text())
        doc["throwaway_ms"] = value
        path.write_text(json.dumps(doc))


def test_a_row_added_to_the_table_shows_in_both_reports_and_the_compare(tmp_path, report,
                                                                         monkeypatch):
    throwaway = Column("throwaway", "throwaway", field("throwaway_ms"), unit="ms",
                       where=frozenset({REPORT, COMPARE}))
    monkeypatch.setattr(columns, "COLUMNS", columns.COLUMNS + (throwaway,))
    runs = []
    for run_id, value in (("A", 41.5), ("B", 43.25)):
        recs = [record("onnx-cpu", host="node", host_kind="cpu_server", scales=(1.0, 1.01))]
        runs.append(write_run(tmp_path, run_id, {"node": {"kind": "cpu_server",
                                                          "records": recs}}))
        _with_throwaway(runs[-1], [value])
    a, b = runs
    assert report(a).exit_code == 0
    header, row = _variants_table((a / "report.md").read_text())
    assert header.endswith("| providers | throwaway |") and row.endswith("| 41.5 |"), row
    assert "<th>throwaway</th>" in (a / "report.html").read_text()
    assert '<td class="num">41.5</td></tr>' in (a / "report.html").read_text()
    result = report("--compare", a, b)
    assert result.exit_code == 0, result.output
    assert "A throwaway 41.5 ms, B throwaway 43.2 ms, B/A" in result.stdout
    md = (b / "compare" / "compare.md").read_text()
    assert "| A p50 ms | B p50 ms | A throwaway ms | B throwaway ms | B/A |" in md
    assert "| 41.5 | 43.2 |" in md
