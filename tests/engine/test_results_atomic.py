"""Atomic records: never a half-written file, and one crashing variant never costs the others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from servebench_engine import variants
from servebench_engine.results import jsonable, write_json_atomic, write_record

HERE = "tests.engine.crashing_variants"


def test_write_is_complete_readable_and_leaves_no_temporary(tmp_path):
    record = {"a": [1, 2], "p": Path("/x"), "f": np.float32(1.5)}
    path = write_record(tmp_path / "onnx-cpu.json", record)
    assert json.loads(path.read_text()) == {"a": [1, 2], "p": "/x", "f": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["onnx-cpu.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_jsonable_drops_what_json_cannot_hold():
    assert jsonable({"nan": float("nan"), "t": (1, 2), "arr": np.arange(3), 3: {1}}) == \
        {"nan": None, "t": [1, 2], "arr": [0, 1, 2], "3": [1]}


def test_failure_while_writing_keeps_the_old_record(tmp_path):
    path = tmp_path / "onnx-cpu.json"
    write_json_atomic(path, {"run": 1})
    # json.dump streams: the first keys are already in the temporary file when NaN is refused.
    with pytest.raises(ValueError):
        write_json_atomic(path, {"ok": list(range(10_000)), "bad": float("nan")})
    assert json.loads(path.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["onnx-cpu.json"]


def test_process_killed_mid_write_leaves_no_partial_record(tmp_path):
    """SIGKILL in the middle of a write (after the data, before the rename): the final name still
    holds the previous record, complete; the leftover is a dot-file no reader takes for a record."""
    path = tmp_path / "onnx-cpu.json"
    write_json_atomic(path, {"run": 1})
    marker = tmp_path.parent / f"{tmp_path.name}-in-fsync"
    child = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from servebench_engine.results import write_json_atomic

        def stall(fd):
            Path({str(marker)!r}).touch()
            time.sleep(60)

        os.fsync = stall
        write_json_atomic(Path({str(path)!r}), {{"run": 2, "big": list(range(200000))}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child])
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the write"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(path.read_text()) == {"run": 1}
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".onnx-cpu.json.") \
        and leftovers[0].endswith(".tmp")
    assert '"run": 2' in (tmp_path / leftovers[0]).read_text()  # it died mid-way through run 2
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["onnx-cpu.json"]


@pytest.fixture
def crashing(monkeypatch):
    monkeypatch.setitem(variants.REGISTRY, "boom", f"{HERE}:RaisesInLoad")
    monkeypatch.setitem(variants.REGISTRY, "boom-later", f"{HERE}:RaisesMidMeasurement")
    monkeypatch.setitem(variants.REGISTRY, "ctrl-c", f"{HERE}:Interrupted")


def test_crashing_variants_leave_error_records_and_the_rest_run(bench_run, shared_int8, tmp_path,
                                                                crashing):
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "boom,onnx-cpu,boom-later,onnx-optimized",
                  "--profile", "smoke", "--out", out)
    assert r.code == 0, r.err
    recs = {v: json.loads((out / f"{v}.json").read_text())
            for v in ("boom", "onnx-cpu", "boom-later", "onnx-optimized")}
    assert recs["boom"]["status"] == "error"
    assert (recs["boom"]["error_type"], recs["boom"]["reason"]) == \
        ("RuntimeError", "boom while loading the session")
    assert recs["boom-later"]["status"] == "error"
    assert recs["boom-later"]["error_type"] == "MemoryError"
    assert recs["boom-later"]["latency_ms"] is None
    for v in ("onnx-cpu", "onnx-optimized"):
        assert recs[v]["status"] == "ok" and recs[v]["latency_ms"]["p50"] > 0
    suite = json.loads((out / "suite.json").read_text())
    assert suite["status"] == "complete"
    assert {v: s["status"] for v, s in suite["results"].items()} == \
        {"boom": "error", "onnx-cpu": "ok", "boom-later": "error", "onnx-optimized": "ok"}
    assert "[1/4] boom: error: RuntimeError: boom while loading the session" in r.out


def test_ctrl_c_stops_the_suite_and_says_so(bench_run, shared_int8, tmp_path, crashing):
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "onnx-cpu,ctrl-c,onnx-optimized",
                  "--profile", "smoke", "--out", out)
    assert r.code == 130 and r.err.strip() == "error: interrupted"
    suite = json.loads((out / "suite.json").read_text())
    assert suite["status"] == "interrupted"
    assert suite["results"]["onnx-cpu"]["status"] == "ok"
    assert suite["results"]["onnx-optimized"] is None
    assert not (out / "onnx-optimized.json").exists()
