"""Verdicts: strict `<` for "below", inclusive `>=` for "at least", n/a with a reason, which
targets apply to which host kind, and the summary's order."""

from __future__ import annotations

import pytest

from servebench.report import formatting as fmt
from servebench.report.load import load_run
from servebench.report.targets import load_targets
from servebench.report.load import Record
from servebench.report.targets import CRITERIA
from servebench.report.verdict import FAIL, INCONCLUSIVE, NA, PASS, judge, judge_criterion

from .runs import record, write_run


def _verdict(tmp_path, kind: str, **kw):
    run = write_run(tmp_path, "r", {"h": {"kind": kind,
                                          "records": [record("v", host_kind=kind, **kw)]}})
    return judge(load_run(run), load_targets())


def _outcomes(verdict, target_id: str) -> dict[str, str]:
    (j,) = [j for j in verdict.judgements if j.target.id == target_id]
    return {r.criterion.key: r.outcome for r in j.results}


@pytest.mark.parametrize("p50,outcome", [(3.0, FAIL), (2.999, PASS), (3.001, FAIL)])
def test_p50_below_is_strict(tmp_path, p50, outcome):
    # No spread: every sample is the p50, so is its interval, and the value alone decides.
    v = _verdict(tmp_path, "cpu_server", p50_ms=p50, batch_img_s=2000.0, spread=0.0)
    assert _outcomes(v, "server_cpu")["p50_ms_below"] == outcome


@pytest.mark.parametrize("rate,outcome", [(1000.0, PASS), (999.9, FAIL), (1000.1, PASS)])
def test_batch_throughput_at_least_is_inclusive(tmp_path, rate, outcome):
    v = _verdict(tmp_path, "cpu_server", p50_ms=1.0, batch_img_s=rate)
    assert _outcomes(v, "server_cpu")["batch_img_per_s_at_least"] == outcome


@pytest.mark.parametrize("size,outcome", [(5_000_000, FAIL), (4_999_999, PASS),
                                          (5_000_001, FAIL)])
def test_model_size_below_is_strict_in_decimal_megabytes(tmp_path, size, outcome):
    v = _verdict(tmp_path, "edge", p50_ms=10.0, size_bytes=size)
    assert _outcomes(v, "edge")["model_size_mb_below"] == outcome


def test_missing_metric_is_na_with_why_and_never_a_pass(tmp_path):
    # A fixed-shape .tflite has no batch throughput: p50 passes, the target is not "met".
    v = _verdict(tmp_path, "cpu_server", p50_ms=1.0, batch_img_s=None)
    (j,) = v.judgements
    assert j.outcome == NA
    na = [r for r in j.results if r.outcome == NA]
    assert [r.criterion.key for r in na] == ["batch_img_per_s_at_least"]
    assert na[0].value is None and "batch throughput" in na[0].why
    assert v.summaries[0].met == ()


def test_target_host_is_judged_only_on_its_targets(tmp_path):
    v = _verdict(tmp_path, "edge", p50_ms=0.5, batch_img_s=9000.0, size_bytes=1_000_000)
    assert [(j.target.id, j.indicative) for j in v.judgements] == [("edge", False)]


def test_an_a100_node_is_a_cpu_server_for_its_cpu_runs(tmp_path):
    # The A100 nodes have EPYC CPUs: the benchmark role runs the CPU variants there as
    # cpu_server and the CUDA ones as gpu_server; each record is judged on its own kind.
    run = write_run(tmp_path, "r", {"a100": {"kind": "gpu_server", "records": [
        record("onnx-cpu", host="a100", host_kind="cpu_server", p50_ms=2.0, batch_img_s=1500.0),
        record("onnx-cuda", host="a100", host_kind="gpu_server", p50_ms=0.5,
               batch_img_s=9000.0, providers=("CUDAExecutionProvider",)),
    ]}})
    v = judge(load_run(run), load_targets())
    assert sorted((j.record.variant, j.target.id, j.indicative, j.outcome)
                  for j in v.judgements) == [("onnx-cpu", "server_cpu", False, PASS),
                                             ("onnx-cuda", "server_gpu", False, PASS)]


def test_local_host_is_judged_on_every_target_as_indicative(tmp_path):
    v = _verdict(tmp_path, "local", p50_ms=0.5, batch_img_s=9000.0, size_bytes=1_000_000)
    assert [(j.target.id, j.indicative, j.outcome) for j in v.judgements] == [
        ("server_cpu", True, PASS), ("server_gpu", True, PASS), ("edge", True, PASS)]
    for s in v.summaries:
        assert s.met == () and s.judged == 0          # nothing on the target hardware
        assert len(s.indicative_met) == 1


def test_summary_lists_pairs_meeting_a_target_best_p50_first(tmp_path):
    recs = [record("slow", host_kind="cpu_server", p50_ms=2.5, batch_img_s=1200.0),
            record("fast", host_kind="cpu_server", p50_ms=1.1, batch_img_s=1100.0, seed=1),
            record("miss", host_kind="cpu_server", p50_ms=0.9, batch_img_s=800.0, seed=2),
            record("down", host_kind="cpu_server", status="error", reason="boom")]
    run = write_run(tmp_path, "r", {"n1": {"kind": "cpu_server", "records": recs}})
    v = judge(load_run(run), load_targets())
    cpu = v.summaries[0]
    assert [j.record.variant for j in cpu.met] == ["fast", "slow"]
    assert cpu.judged == 3                              # the error record is not judged
    assert v.summaries[1].judged == 0                   # no gpu_server host


def test_failed_host_is_not_judged(tmp_path):
    run = write_run(tmp_path, "r", {"n1": {"kind": "cpu_server", "status": "failed",
                                           "reason": "ssh timed out",
                                           "records": [record("v", host_kind="cpu_server")]}})
    assert judge(load_run(run), load_targets()).judgements == ()


@pytest.mark.parametrize("value,threshold,text", [
    (2.9996, 3.0, "2.9996"),      # would print 3.00 and read as a failed `< 3`
    (3.0, 3.0, "3.00"),
    (999.96, 1000.0, "999.96"),
    (1234.5, 1000.0, "1,234"),
    (0.01234, 1.0, "0.0123"),
])
def test_values_never_print_like_the_threshold_they_miss(value, threshold, text):
    assert fmt.against(value, threshold) == text


def test_printed_value_keeps_its_side_of_an_unround_threshold():
    # 2.9951 is below 2.9952; three digits (3.00) would print it above.
    assert fmt.against(2.9951, 2.9952) == "2.995"
    # 2.9949 is above 2.9945; three digits (2.99) would print it below.
    assert fmt.against(2.9949, 2.9945) == "2.995"


# ---- PASS / FAIL / INCONCLUSIVE (issue 12) ----------------------------------------------------

def _one(verdict, target_id: str, key: str):
    (j,) = [j for j in verdict.judgements if j.target.id == target_id]
    (r,) = [r for r in j.results if r.criterion.key == key]
    return j, r


def test_interval_straddling_the_threshold_is_inconclusive(tmp_path):
    # p50 2.95 ms below 3 ms, but with 20 % spread its 95 % interval reaches past 3 ms.
    v = _verdict(tmp_path, "cpu_server", p50_ms=2.95, batch_img_s=2000.0, spread=0.2)
    j, r = _one(v, "server_cpu", "p50_ms_below")
    assert r.value < 3.0 and r.ci[0] < 3.0 <= r.ci[1]
    assert r.outcome == INCONCLUSIVE and "straddles" in r.why
    assert j.outcome == INCONCLUSIVE
    assert v.summaries[0].met == () and v.summaries[0].inconclusive == (j,)


@pytest.mark.parametrize("p50,outcome", [(2.5, PASS), (3.5, FAIL)])
def test_interval_clear_of_the_threshold_decides(tmp_path, p50, outcome):
    v = _verdict(tmp_path, "cpu_server", p50_ms=p50, batch_img_s=2000.0, spread=0.2)
    _, r = _one(v, "server_cpu", "p50_ms_below")
    assert r.outcome == outcome and r.ci is not None
    assert (r.ci[1] < 3.0) if outcome == PASS else (r.ci[0] >= 3.0)


def _p99_targets(tmp_path, threshold: float):
    path = tmp_path / "targets.yml"
    path.write_text(f"targets:\n  t:\n    judged_on: [cpu_server]\n    criteria:\n"
                    f"      p99_ms_below: {threshold}\n", encoding="utf-8")
    return load_targets(path)


@pytest.mark.parametrize("n,outcome", [(300, INCONCLUSIVE), (700, PASS)])
def test_p99_under_loadgen_minimum_is_inconclusive_even_far_below(tmp_path, n, outcome):
    # p99 of 300 samples rests on three of them: not valid (LoadGen wants 662), however far
    # below the threshold it sits; 700 samples are enough.
    run = write_run(tmp_path, "r", {"h": {"kind": "cpu_server", "records": [
        record("v", host_kind="cpu_server", p50_ms=1.0, n=n)]}})
    v = judge(load_run(run), _p99_targets(tmp_path, 100.0))
    _, r = _one(v, "t", "p99_ms_below")
    assert r.value < 2.0 and r.outcome == outcome
    if outcome == INCONCLUSIVE:
        assert "p99 not valid" in r.why and "300 samples" in r.why


def test_single_fps_interval_is_the_p50_interval_inverted(tmp_path):
    path = tmp_path / "fps.yml"
    path.write_text("targets:\n  t:\n    judged_on: [cpu_server]\n    criteria:\n"
                    "      single_fps_at_least: 400\n      single_fps_trials_at_least: 1\n",
                    encoding="utf-8")
    run = write_run(tmp_path, "r", {"h": {"kind": "cpu_server", "records": [
        record("v", host_kind="cpu_server", p50_ms=2.5, spread=0.2)]}})
    v = judge(load_run(run), load_targets(path))
    _, r = _one(v, "t", "single_fps_at_least")
    lat = load_run(run).hosts[0].records[0].data["latency_ms"]
    assert r.value == pytest.approx(400.0)
    assert r.ci == pytest.approx((1000 / lat["ci95"]["p50"][1], 1000 / lat["ci95"]["p50"][0]))
    assert r.outcome == INCONCLUSIVE
    _, trials = _one(v, "t", "single_fps_trials_at_least")
    assert trials.outcome == PASS and trials.ci is None


def test_a_record_without_intervals_is_judged_on_its_value(tmp_path):
    # The loader refuses schema-2 stats without ci95/valid; the judging itself still copes.
    rec = record("v", host_kind="cpu_server", p50_ms=2.95, spread=0.2)
    del rec["latency_ms"]["ci95"], rec["latency_ms"]["valid"]
    r = judge_criterion(CRITERIA["p50_ms_below"], 3.0, Record("v", "ok", None, tmp_path, rec))
    assert (r.outcome, r.ci) == (PASS, None)


def test_the_loader_refuses_stats_without_intervals(tmp_path):
    rec = record("v", host_kind="cpu_server")
    del rec["latency_ms"]["valid"]
    run = load_run(write_run(tmp_path, "r", {"h": {"kind": "cpu_server", "records": [rec]}}))
    (r,) = run.hosts[0].records
    assert r.status == "unreadable" and "latency_ms: 'valid' is a required property" in r.reason
