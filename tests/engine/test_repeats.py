"""Repeats (issue 12): every repeat of every variant in a fresh process, interleaved; one record
pooling them, each repeat's median kept, the spread and the replicable flag; a process killed by
a signal is its variant's error record and the suite goes on."""

from __future__ import annotations

import json
import os

import pytest

from servebench_engine import repeats, variants
from servebench_engine.profiles import PROFILES

HERE = "tests.engine.repeat_variants"


def part(p50_ns: int, n: int = 10, batch_ns: int = 32_000_000, status: str = "ok",
         **info) -> dict:
    """One repeat's record as a child writes it."""
    from servebench_engine.record import base_record
    from servebench_engine.stats import summarize_ns

    lat = [p50_ns] * n
    record = base_record("v", run={"host": "h", "host_kind": "local", "profile": "smoke",
                                   "model": {}, "data": {}, "environment": {}, "batch_size": 32})
    record.update(status=status, reason=None if status == "ok" else "boom",
                  accuracy={"value": 0.5}, cold_start_ms=5.0, finished_at="t",
                  info={"minimums_met": {"latency": True, "batch": True}, **info})
    if status == "ok":
        record["latency_ms"] = summarize_ns(lat, n * p50_ns / 1e9)
        record["batch_latency_ms"] = summarize_ns([batch_ns] * 3, 3 * batch_ns / 1e9)
        record["batch_throughput"] = 32e3 / (batch_ns / 1e6)
        record["samples"] = {"latency_ns": lat, "batch_ns": [batch_ns] * 3}
    return record


def test_profiles_repeat_by_default_full_at_least_three():
    assert (PROFILES["smoke"].repeats, PROFILES["quick"].repeats, PROFILES["full"].repeats) == \
        (1, 2, 3)


def test_merge_pools_samples_keeps_each_median_and_judges_the_spread():
    rec = repeats.merge([part(10_000_000, n=10), part(10_400_000, n=30)], planned=2)
    assert rec["samples"]["repeat_counts"] == {"latency": [10, 30], "batch": [3, 3]}
    assert rec["samples"]["latency_ns"] == [10_000_000] * 10 + [10_400_000] * 30
    assert rec["latency_ms"]["count"] == 40 and rec["latency_ms"]["p50"] == 10.4
    rep = rec["repeats"]
    assert (rep["count"], rep["planned"], rep["p50_ms"]) == (2, 2, [10.0, 10.4])
    assert rep["spread"] == pytest.approx(1.04) and rep["replicable"] is True
    assert rep["rule"] == "largest / smallest repeat median <= 1.05"
    # Seed 002's FPS: trials / total timed seconds, beside 1000 / p50.
    assert rec["single_fps_trials"] == pytest.approx(40 / (0.1 + 0.312))
    assert rec["single_fps_from_p50"] == pytest.approx(1000 / 10.4)
    assert rec["batch_throughput"] == pytest.approx(1000.0)


def test_a_spread_over_five_percent_is_not_replicable_and_one_repeat_says_nothing():
    assert repeats.merge([part(10_000_000), part(10_600_000)], 2)["repeats"]["replicable"] is False
    single = repeats.merge([part(10_000_000)], 1)["repeats"]
    assert (single["count"], single["spread"], single["replicable"]) == (1, None, None)


def test_a_failed_later_repeat_makes_an_error_keeping_the_medians_done():
    rec = repeats.merge([part(10_000_000), part(0, status="error")], planned=3)
    assert rec["status"] == "error" and rec["reason"] == "repeat 2/3: boom"
    assert rec["repeats"]["p50_ms"] == [10.0] and rec["repeats"]["count"] == 1


def test_merge_flags_a_repeat_whose_frequency_moved_and_keeps_the_largest_peak():
    calm = {"before": {"f": 1}, "after": {"f": 1}, "changed": False}
    moved = {"before": {"f": 1}, "after": {"f": 2}, "changed": True}
    rec = repeats.merge([part(1_000_000, stability=calm, peak_rss_mb={"load": 50, "steady": 80}),
                         part(1_000_000, stability=moved, peak_rss_mb={"load": 60, "steady": 70})],
                        2)
    assert rec["info"]["stability"]["changed"] is True
    assert rec["info"]["stability"]["changed_in_repeats"] == [2]
    assert rec["info"]["peak_rss_mb"] == {"load": 60, "steady": 80}


@pytest.fixture
def noting(monkeypatch):
    monkeypatch.setitem(variants.REGISTRY, "pid-a", f"{HERE}:PidA")
    monkeypatch.setitem(variants.REGISTRY, "pid-b", f"{HERE}:PidB")
    monkeypatch.setitem(variants.REGISTRY, "oom", f"{HERE}:KilledInLoad")


def test_each_repeat_is_a_fresh_process_interleaved(bench_run, shared_int8, tmp_path, noting):
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "pid-a,pid-b,onnx-cpu", "--profile",
                  "smoke", "--repeats", "2", "--out", out)
    assert r.code == 0, r.err
    noted = (out / "artifacts" / shared_int8.stem / "pids.txt").read_text().split("\n")[:-1]
    names = [line.split()[0] for line in noted]
    pids = [int(line.split()[1]) for line in noted]
    assert names == ["PidA", "PidB", "PidA", "PidB"]          # ABC ABC, not AA BB
    assert len(set(pids)) == 4 and os.getpid() not in pids     # one fresh process each
    for progress in ("[r1/2 1/3] pid-a: ok", "[r2/2 3/3] onnx-cpu: ok",
                     "[r2/2 3/3] onnx-cpu: 2 repeats: pooled p50="):
        assert progress in r.out
    # Accuracy is measured in the first repeat only.
    assert r.out.count("onnx-cpu: accuracy on") == 1
    rec = json.loads((out / "onnx-cpu.json").read_text())
    assert rec["repeats"]["count"] == 2 and len(rec["repeats"]["p50_ms"]) == 2
    counts = rec["samples"]["repeat_counts"]
    assert sum(counts["latency"]) == rec["latency_ms"]["count"] == len(rec["samples"]["latency_ns"])
    assert rec["accuracy"]["total"] == 22
    assert set(rec["info"]["peak_rss_mb"]) >= {"load", "steady"}
    assert rec["info"]["peak_rss_mb"]["steady"] >= rec["info"]["peak_rss_mb"]["load"] > 0
    assert "changed" in rec["info"]["stability"]
    suite = json.loads((out / "suite.json").read_text())
    assert suite["repeats"] == 2 and suite["results"]["onnx-cpu"]["repeats"] == 2


def test_a_process_killed_by_a_signal_is_an_error_record_and_the_rest_run(
        bench_run, shared_int8, tmp_path, noting):
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "oom,onnx-cpu", "--profile", "smoke",
                  "--repeats", "2", "--out", out)
    assert r.code == 0, r.err
    oom = json.loads((out / "oom.json").read_text())
    assert oom["status"] == "error" and "SIGKILL" in oom["reason"]
    assert oom["error_type"] == "WorkerDied"
    assert "[r1/2 1/2] oom: error: WorkerDied:" in r.out
    assert "[r2/2 1/2] oom" not in r.out                      # a failed variant is not repeated
    assert json.loads((out / "onnx-cpu.json").read_text())["repeats"]["count"] == 2
    assert json.loads((out / "suite.json").read_text())["status"] == "complete"


def test_splits_are_shared_as_files_and_the_parent_keeps_no_second_copy(tmp_path):
    import numpy as np

    from servebench_engine import worker
    from servebench_engine.context import Split

    images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    splits = {"evaluation": Split(images=images.copy(), labels=np.arange(4),
                                  paths=(tmp_path / "a.jpg",))}
    shared = worker.share_splits(splits, tmp_path)
    assert isinstance(splits["evaluation"].images, np.memmap)      # the parent's copy is gone
    child = worker._splits(shared)["evaluation"]
    assert np.array_equal(child.images, images) and child.images.flags.writeable
    assert child.paths == (tmp_path / "a.jpg",) and list(child.labels) == [0, 1, 2, 3]
