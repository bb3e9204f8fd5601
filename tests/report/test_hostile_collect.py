"""servebench.collect under hostile input (issue 17, items 2 and 13): an unknown host kind fails
that host, not the collect (run.json is still written); a host folder that is a symlink, or a
host name that climbs out, is never read or written through; a results/latest that is a real
folder is one line and left as it is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import snapshot
from .runs import engine_suite, record, write_json

PLAN = {"run_id": "r", "profile": "quick", "variants": [], "model": "", "tflite_model": "",
        "started_at": "2026-11-23T19:15:00Z"}


def _collect(run_dir, hosts, repo):
    return subprocess.run([sys.executable, "-m", "servebench.collect", str(run_dir)],
                          input=json.dumps({**PLAN, "repo": str(repo), "hosts": hosts}),
                          capture_output=True, text=True, timeout=120, check=False)


def _engine_run(folder, host):
    recs = [record("onnx-cpu", host=host, host_kind="cpu_server")]
    write_json(folder / "onnx-cpu.json", recs[0])
    write_json(folder / "runs" / "cpu" / "suite.json",
               engine_suite(recs, host=host, kind="cpu_server", profile="quick"))


def test_an_unknown_host_kind_fails_that_host_and_run_json_is_written(tmp_path):
    run = tmp_path / "results" / "r"
    _engine_run(run / "n1", "n1")
    _engine_run(run / "n2", "n2")
    done = _collect(run, [{"host": "n1", "kind": "banana", "failure": {}},
                          {"host": "n2", "kind": "cpu_server", "failure": {}}], tmp_path)
    assert done.returncode == 0, done.stderr
    meta = json.loads((run / "run.json").read_text())
    n1, n2 = meta["hosts"]
    assert (n1["status"], n1["kind"]) == ("failed", "unknown"), n1
    assert "host_kind 'banana' is not one of local, cpu_server" in n1["reason"]
    assert n2["status"] == "ok"
    # run.json's entry is the host's status plus what prices it (none here).
    assert (n1.pop("site"), n1.pop("node_type")) == (None, None)
    assert json.loads((run / "n1" / "host_status.json").read_text()) == n1


@pytest.mark.parametrize("case", ["symlink", "climbs_out"])
def test_a_host_folder_outside_the_run_is_never_written(tmp_path, case):
    run = tmp_path / "results" / "r"
    victim = tmp_path / "victim"
    _engine_run(victim, "n1")
    run.mkdir(parents=True)
    if case == "symlink":
        (run / "n1").symlink_to(victim)
        name = "n1"
    else:
        name = "../../victim"
    before = snapshot(victim)
    done = _collect(run, [{"host": name, "kind": "cpu_server", "failure": {}}], tmp_path)
    assert done.returncode == 0, done.stderr
    assert snapshot(victim) == before                      # no suite.json, no host_status.json
    (host,) = json.loads((run / "run.json").read_text())["hosts"]
    assert host["status"] == "failed"
    assert ("n1/ in the run folder is a symlink: refused" if case == "symlink"
            else "is not a folder name") in host["reason"], host
    assert not (tmp_path / "results" / "latest").exists()


def test_a_latest_that_is_a_real_folder_is_one_line_and_left_alone(tmp_path):
    run = tmp_path / "results" / "r"
    _engine_run(run / "n1", "n1")
    latest = tmp_path / "results" / "latest"
    latest.mkdir()
    (latest / "mine.txt").write_text("kept\n")
    done = _collect(run, [{"host": "n1", "kind": "cpu_server", "failure": {}}], tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {latest} is a real folder or file, not the link servebench "
                           "keeps"), line
    assert snapshot(latest) == {"mine.txt": b"kept\n"} and not latest.is_symlink()
    assert (run / "run.json").is_file()


def test_an_engine_summary_with_nan_is_not_merged(tmp_path):
    run = tmp_path / "results" / "r"
    _engine_run(run / "n1", "n1")
    summary = run / "n1" / "runs" / "cpu" / "suite.json"
    doc = json.loads(summary.read_text())
    doc["results"]["onnx-cpu"]["p50_ms"] = float("nan")
    summary.write_text(json.dumps(doc))                 # Python writes NaN as such
    done = _collect(run, [{"host": "n1", "kind": "cpu_server", "failure": {}}], tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (run / "n1" / "suite.json").exists()
    status = json.loads((run / "n1" / "host_status.json").read_text())
    assert status["status"] == "failed"
    assert status["reason"] == ("runs/cpu/suite.json: not readable JSON (NaN is not a number (JSON "
                                "has no NaN or Infinity))"), status
    assert ": NaN" not in (run / "run.json").read_text()      # no NaN figure written
