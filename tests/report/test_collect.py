"""servebench.collect writes the run-level files the report reads, valid against the one schema;
the report refuses an older schema_version with a one-line way out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from servebench import schema
from servebench.collect import collect
from servebench.report.cli import main as bench_report

from .runs import cluster_run, engine_suite, record, write_json

PLAN = {"run_id": "r", "profile": "quick", "variants": [], "model": "", "tflite_model": "",
        "started_at": "2026-11-23T19:15:00Z"}


def _collect_cli(run_dir, **popen):
    return subprocess.Popen([sys.executable, "-m", "servebench.collect", str(run_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def test_schema_file_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(schema.SCHEMA_FILE.read_text()))


def test_every_file_of_a_collected_run_matches_the_schema(tmp_path):
    run = cluster_run(tmp_path)
    checked = []
    for path in sorted(run.rglob("*.json")):
        rel = path.relative_to(run)
        kind = ("run" if rel.name == "run.json" else "host_status" if rel.name == "host_status.json"
                else "suite" if rel.name == "suite.json" else "record")
        assert schema.problem(kind, json.loads(path.read_text())) is None, rel
        checked.append(kind)
    assert {"run", "host_status", "suite", "record"} <= set(checked)


def test_merge_of_two_engine_runs_a_failed_host_and_a_second_collect(tmp_path):
    run = tmp_path / "results" / "r"
    cpu = [record("onnx-cpu", host="n1", host_kind="cpu_server")]
    ov = [record("openvino", host="n1", host_kind="cpu_server", status="error", reason="boom")]
    write_json(run / "n1" / "runs" / "cpu" / "suite.json",
               engine_suite(cpu, host="n1", kind="cpu_server", profile="quick"))
    interrupted = engine_suite(ov, host="n1", kind="cpu_server", profile="quick")
    interrupted.update(status="interrupted", finished_at="2026-11-23T19:20:00.000Z")
    write_json(run / "n1" / "runs" / "openvino" / "suite.json", interrupted)
    (run / "n2").mkdir()
    hosts = [{"host": "n1", "kind": "cpu_server", "failure": {}},
             {"host": "n2", "kind": "gpu_server",
              "failure": {"stage": "setup", "reason": "setup: apt: timed out", "unreachable": False}}]
    first = collect(run, {**PLAN, "repo": str(tmp_path), "hosts": hosts})
    suite = json.loads((run / "n1" / "suite.json").read_text())
    assert suite["variants"] == ["onnx-cpu", "openvino"] and set(suite["results"]) == {
        "onnx-cpu", "openvino"}
    assert (suite["status"], suite["finished_at"], suite["runtimes"]) == (
        "interrupted", "2026-11-23T19:20:00.000Z", ["cpu", "openvino"])
    assert [h["status"] for h in first["hosts"]] == ["ok", "failed"]
    assert json.loads((run / "n2" / "host_status.json").read_text()) == {
        "host": "n2", "kind": "gpu_server", "status": "failed", "stage": "setup",
        "reason": "setup: apt: timed out"}
    assert first["variants"] is None and first["model"] == "random-init"
    assert first["models"] == ["random-init"] and first["repeats"] is None
    assert (tmp_path / "results" / "latest").readlink().name == "r"
    again = collect(run, {**PLAN, "started_at": "2026-11-23T23:00:00Z", "repo": str(tmp_path),
                          "hosts": hosts})
    assert again["started_at"] == "2026-11-23T19:15:00Z"
    several = collect(run, {**PLAN, "model": "/m/a.onnx", "models": ["/m/a.onnx", "/m/b.onnx"],
                            "repeats": 3, "repo": str(tmp_path), "hosts": hosts})
    assert (several["models"], several["repeats"]) == (["/m/a.onnx", "/m/b.onnx"], 3)


def test_a_run_with_no_results_leaves_latest_alone(tmp_path):
    """Through the module's command line, as the play calls it; no host left even a folder."""
    proc = _collect_cli(tmp_path / "results" / "r")
    out, err = proc.communicate(json.dumps(
        {**PLAN, "repo": str(tmp_path), "hosts": [{"host": "n1", "kind": "edge"}]}), timeout=60)
    assert (proc.returncode, out, err) == (
        0, "n1: failed (no results were collected from this host)\n", "")
    assert json.loads((tmp_path / "results" / "r" / "n1" / "host_status.json").read_text())[
        "status"] == "failed"
    assert not (tmp_path / "results" / "latest").is_symlink()


def test_bad_plan_is_one_line_exit_2(tmp_path):
    proc = _collect_cli(tmp_path)
    out, err = proc.communicate('{"run_id": "r"}', timeout=60)
    assert proc.returncode == 2, err
    assert err.startswith("error: the plan on stdin lacks profile") and err.count("\n") == 1


def test_ctrl_c_is_130_one_line(tmp_path):
    # SIGINT as a terminal sends it (a parent started with SIGINT ignored would pass that on).
    proc = _collect_cli(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                       signal.SIG_DFL))
    # It blocks reading the plan from stdin: interrupt it there, once it is up (its handler set).
    deadline = time.monotonic() + 30
    while "pipe" not in Path(f"/proc/{proc.pid}/wchan").read_text():
        assert time.monotonic() < deadline and proc.poll() is None, "never waited for stdin"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (130, "error: interrupted\n")


def test_older_run_json_is_refused_with_how_to_collect_again(tmp_path):
    run = cluster_run(tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["schema_version"] = 0
    write_json(run / "run.json", meta)
    result = CliRunner().invoke(bench_report, [str(run)])
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: {run}/run.json: schema_version 0 is older than {schema.SCHEMA_VERSION}")
    assert f"--tags collect -e run_id={run.name}" in line
    assert not (run / "report.md").exists()


def test_run_json_in_a_shape_nothing_writes_is_a_note(tmp_path):
    run = cluster_run(tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["hosts"] = ["node-cpu"]  # names, not statuses: what the old loader let through
    write_json(run / "run.json", meta)
    result = CliRunner().invoke(bench_report, [str(run)])
    assert result.exit_code == 0, result.output
    assert "run.json: hosts/0: 'node-cpu' is not of type 'object'" in (
        run / "report.md").read_text()
