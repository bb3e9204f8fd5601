"""The record type (servebench_engine.record) is the one definition of a variant record: the
results schema and docs/RESULTS.md's field table must say what it says, and every rule it names
is one repeats.merge applies."""

from __future__ import annotations

import json

import pytest

from servebench_engine import record, repeats, settings
from servebench_engine.results import SCHEMA_VERSION

START = "<!-- record fields: generated from benchmarks/servebench_engine/record.py"
END = "<!-- end of record fields -->"
RUN = {"host": "h", "host_kind": "local", "profile": "smoke", "model": {"name": "m"},
       "data": {"source": "synthetic"}, "environment": {"threads": 1}, "batch_size": 32}


def test_the_results_schema_describes_the_record_type(repo_root):
    schema = json.loads((repo_root / "scripts/servebench/results.schema.json").read_text())
    assert schema["$defs"]["record"] == record.json_schema()


def test_the_results_doc_field_table_is_the_record_types(repo_root):
    text = (repo_root / "docs/RESULTS.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    block = text.split(START, 1)[1].split("\n", 1)[1].split(END, 1)[0]
    assert block == record.markdown_table(), (
        "docs/RESULTS.md's record table differs from record.py: paste "
        "`python -m servebench_engine.record table` between its markers")


def test_every_rule_has_its_merge():
    assert set(repeats.RULES) | {"per repeat"} == set(record.RULES)
    assert {f.metadata["rule"] for f in record.FIELDS} <= set(record.RULES)


def test_a_base_record_has_every_field_in_order_and_the_runs_values():
    base = record.base_record("onnx-cpu", run=RUN)
    assert list(base) == [f.name for f in record.FIELDS]
    assert base["schema_version"] == SCHEMA_VERSION and base["variant"] == "onnx-cpu"
    assert {k: base[k] for k in RUN} == RUN
    assert base["samples"] == {"latency_ns": [], "batch_ns": [],
                               "repeat_counts": {"latency": [], "batch": []}}
    other = record.base_record("onnx-cpu", run=RUN)
    other["info"]["x"] = 1
    other["providers"]["active"].append("CPU")
    assert base["info"] == {} and base["providers"]["active"] == []  # no shared defaults


@pytest.mark.parametrize("argv", [["schema"], ["table"]])
def test_the_module_prints_what_the_checks_compare(argv, capsys):
    assert record.main(argv) == 0
    out = capsys.readouterr().out
    expected = record.markdown_table() if argv == ["table"] else json.dumps(
        record.json_schema(), indent=1) + "\n"
    assert out == expected


def test_the_host_kinds_bench_run_takes_are_the_schemas(repo_root):
    schema = json.loads((repo_root / "scripts/servebench/results.schema.json").read_text())
    # "unknown" is collect's, for a host whose kind the inventory does not say.
    assert set(schema["$defs"]["host_kind"]["enum"]) - {"unknown"} == set(settings.HOST_KINDS)
