"""What the engine really writes matches the one results schema, and survives collect + report."""

from __future__ import annotations

import json

import jsonschema

from servebench import schema
from servebench.collect import collect
from servebench.report.load import load_run
from servebench_engine import results


def test_engine_and_control_side_share_the_schema_version():
    assert results.SCHEMA_VERSION == schema.SCHEMA_VERSION


def test_engine_output_validates_collects_and_loads(bench_run, shared_int8, tmp_path,
                                                    monkeypatch):
    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    run_dir = tmp_path / "results" / "r1"
    out = run_dir / "node1" / "runs" / "local"
    r = bench_run("--model", shared_int8, "--variants", "onnx-cpu", "--profile", "smoke",
                  "--out", out, "--host-label", "node1", "--threads", "1")
    assert r.code == 0, r.err
    record = json.loads((out / "onnx-cpu.json").read_text())
    assert schema.problem("record", record) is None
    assert schema.problem("suite", json.loads((out / "suite.json").read_text())) is None
    # The collect play fetches the records beside runs/: the same here.
    (run_dir / "node1" / "onnx-cpu.json").write_text(json.dumps(record))

    collect(run_dir, {"run_id": "r1", "profile": "smoke", "variants": ["onnx-cpu"],
                      "model": str(shared_int8), "tflite_model": "",
                      "started_at": "2026-11-23T19:15:00Z", "repo": str(tmp_path),
                      "hosts": [{"host": "node1", "kind": "local", "failure": {}}]})
    full = json.loads(schema.SCHEMA_FILE.read_text())
    for path, kind in ((run_dir / "run.json", "run"),
                       (run_dir / "node1" / "host_status.json", "host_status"),
                       (run_dir / "node1" / "suite.json", "suite")):
        # Validated by jsonschema directly too, not only through servebench.schema.
        jsonschema.validate(json.loads(path.read_text()), {"$ref": f"#/$defs/{kind}", **full})
    loaded = load_run(run_dir)
    (host,) = loaded.hosts
    assert (host.name, host.status, [(x.variant, x.status) for x in host.records]) == \
        ("node1", "ok", [("onnx-cpu", "ok")])
    assert loaded.meta["hosts"][0]["status"] == "ok" and not loaded.notes
    assert (tmp_path / "results" / "latest").readlink().name == "r1"
