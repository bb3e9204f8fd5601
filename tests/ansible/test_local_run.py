"""The embedded default: bench.yml on localhost through ansible-runner, as `make bench` runs it
(here limited to two variants; `make bench PROFILE=quick` runs them all)."""

from __future__ import annotations

import pytest

from .conftest import LOCAL_INVENTORY, REPO, bench, read_json

pytestmark = pytest.mark.slow

VARIANTS = ["onnx-cpu", "onnx-optimized"]


# The shipped targets plus a knee criterion: its p99 bound must become the engine's
# --load-bound-ms (the plan reads it; a local host is judged against every target).
KNEE_TARGET = """
  serving:
    title: Serving under load
    judged_on: [cpu_server]
    criteria:
      knee_rps_at_least: {p99_ms: 35, rps: 1}
"""


def test_local_run_benchmarks_collects_and_reports(tmp_path):
    targets = tmp_path / "targets.yml"
    targets.write_text((REPO / "targets.yml").read_text() + KNEE_TARGET)
    run = bench(tmp_path, [LOCAL_INVENTORY],
                extravars={"profile": "quick", "variants": ",".join(VARIANTS),
                           "targets_file": str(targets)})

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    assert run.run_id.endswith("-local-quick")
    run_dir = run.run_dir
    # ansible-runner's artifacts are kept beside the results of the run.
    assert run.artifact_dir == run_dir / "runner"
    assert (run.artifact_dir / "rc").read_text().strip() == "0"
    assert (run.artifact_dir / "status").read_text().strip() == "successful"
    assert any((run.artifact_dir / "job_events").glob("*.json"))

    host = run_dir / "localhost"
    for variant in VARIANTS:
        record = read_json(host / f"{variant}.json")
        assert record["status"] == "ok", record.get("reason")
        assert record["host_kind"] == "local" and record["profile"] == "quick"
        assert record["data"]["synthetic"] and record["model"]["random_weights"]
    # The quick profile's load mode ran for onnx-cpu in its first repeat (the one bench.yml test
    # that keeps it: the others turn it off for time): a knee under the bound, the generator's
    # own ceiling above it, and the report's latency-under-load plot.
    load = read_json(host / "onnx-cpu.json")["load"]
    assert load["knee"]["p99_bound_ms"] == load["bound_ms"] == 35
    assert load["closed_loop"]["points"] and load["open_loop"]["points"]
    assert load["generator"]["max_issue_rps"] > load["best_closed_loop_rps"] > 0
    assert read_json(host / "onnx-optimized.json")["load"] is None
    suite = read_json(host / "suite.json")
    assert suite["variants"] == VARIANTS and suite["runtimes"] == ["local"]
    assert read_json(host / "host_status.json") == {
        "host": "localhost", "kind": "local", "status": "ok", "stage": None, "reason": None}
    meta = read_json(run_dir / "run.json")
    assert meta["run_id"] == run.run_id and meta["profile"] == "quick"
    assert [h["host"] for h in meta["hosts"]] == ["localhost"]
    assert (tmp_path / "results" / "latest").resolve() == run_dir

    for name in ("report.md", "report.html"):
        assert (run_dir / name).stat().st_size > 0
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"latency.png", "throughput.png", "load.png"}
    report = (run_dir / "report.md").read_text()
    assert "onnx-optimized" in report
    # ...and judged there, at the bound it was searched at.
    assert "knee (p99 ≤ 35 ms)" in report

    # Progress: one line per variant as its record lands, then the engine's summary.
    waits = [e for e in run.task_results("Benchmark | wait for each variant's record (local)")
             if "item" in e["res"]]
    assert [w["res"]["item"] for w in waits] == VARIANTS
