"""`bench-report --compare RUN_A RUN_B`: the ratio of medians with its interval from the
repeats, the significance call, the regression gate and the environment differences."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from servebench.errors import ExitCode
from servebench.report.compare import (FASTER, SAME, SLOWER, parse_threshold, ratio_of_medians,
                                       t_quantile)
from servebench.errors import UsageError

from .runs import environment, record, write_run

SCALES_A = (1.0, 1.012, 0.991)
SCALES_B = (0.995, 1.008, 1.004)


def _run(root, run_id, factor, *, scales=SCALES_A, host="node", env=None, n=300):
    recs = [record(v, host=host, host_kind="cpu_server", p50_ms=p50 * factor, seed=i,
                   scales=scales, n=n)
            for i, (v, p50) in enumerate((("onnx-cpu", 3.2), ("openvino", 1.7)))]
    if env:
        for r in recs:
            r["environment"] = env
    return write_run(root, run_id, {host: {"kind": "cpu_server", "records": recs}})


@pytest.mark.parametrize("df, q", [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105),
                                   (10, 2.228138852), (1000, 1.962339),
                                   (2.5, 3.5746548)])  # by integrating the density
def test_t_quantile_matches_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, rel=1e-5)


def test_five_percent_slowdown_is_detected_and_gated(tmp_path, report):
    a = _run(tmp_path, "A", 1.0)
    b = _run(tmp_path, "B", 1.05, scales=SCALES_B)
    result = report("--compare", a, b)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if " @ node: " in line]
    assert len(lines) == 2 and all(line.endswith(f": {SLOWER}") for line in lines), lines
    assert (b / "compare" / "compare.md").is_file() and (b / "compare" / "compare.png").is_file()
    md = (b / "compare" / "compare.md").read_text()
    assert "| random-init | onnx-cpu | node |" in md and "Welch t on log repeat medians" in md
    # Significant, but not over a 10 % gate; over a 4 % one it fails with exit 6.
    assert report("--compare", a, b, "--fail-above", "10%").exit_code == 0
    gated = report("--compare", a, b, "--fail-above", "4%")
    assert gated.exit_code == ExitCode.REGRESSION == 6
    assert "error: 2 significant slowdown(s) above 4 %: random-init / onnx-cpu @ node" \
        in gated.stderr


def test_a_run_against_itself_reshuffled_is_no_change(tmp_path, report):
    a = _run(tmp_path, "A", 1.0)
    b = _run(tmp_path, "B", 1.0, scales=SCALES_B)
    result = report("--compare", a, b, "--fail-above", "5%")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(f": {SAME}") == 2
    assert "gate: no significant slowdown above 5 %" in result.stdout


def _medians(rng, factor, repeats=3, n=200, between=0.03, within=0.15):
    """Repeat medians of one synthetic run: a process-level factor times a loop median."""
    return [float(np.median(rng.lognormal(math.log(factor) + rng.normal(0, between),
                                          within, n))) for _ in range(repeats)]


def _rec(meds):
    return {"latency_ms": {"p50": meds[0]}, "repeats": {"p50_ms": meds}}


def test_monte_carlo_false_alarm_and_detection_rates():
    """1,000 pairs of 3-repeat runs from one distribution (3 % process-to-process, 15 % within
    a loop of 200): flagged (either way) at most 5 % + 3.5 standard errors of the Monte-Carlo
    estimate, sqrt(0.05 * 0.95 / 1000) = 0.0069. 300 pairs with a 5 % slowdown injected into B
    (1 % process-to-process, 5 % within a loop of 1,000, the full profile's minimum): detected
    as slower in at least 90 %."""
    rng = np.random.default_rng(20261202)
    trials = 1000
    flagged = sum(ratio_of_medians(_rec(_medians(rng, 1.0)), _rec(_medians(rng, 1.0))).call
                  != SAME for _ in range(trials))
    rate = flagged / trials
    bound = 0.05 + 3.5 * math.sqrt(0.05 * 0.95 / trials)
    print(f"same distribution: flagged {rate:.4f} (bound {bound:.4f})")
    assert rate <= bound
    trials = 300
    quiet = {"between": 0.01, "within": 0.05, "n": 1000}
    detected = sum(ratio_of_medians(_rec(_medians(rng, 1.0, **quiet)),
                                    _rec(_medians(rng, 1.05, **quiet))).call == SLOWER
                   for _ in range(trials))
    print(f"5 % slowdown: detected {detected / trials:.4f}")
    assert detected / trials >= 0.9


def test_one_repeat_each_is_a_bootstrap_that_never_gates(tmp_path, report):
    a = _run(tmp_path, "A", 1.0, scales=(1.0,))
    b = _run(tmp_path, "B", 1.2, scales=(1.0,))
    result = report("--compare", a, b)
    assert result.exit_code == 0, result.output            # within-process noise only
    assert result.stdout.count(f": {SLOWER}") == 2
    assert "not gated" in (b / "compare" / "compare.md").read_text()
    # A gate over rows it never gates would pass whatever they show: it fails closed.
    gated = report("--compare", a, b, "--fail-above", "5%")
    assert gated.exit_code == ExitCode.USAGE, gated.output
    assert "error: gate: nothing to gate: 2 row(s) compared, all from one repeat" in gated.stderr


def test_bootstrap_interval_of_one_repeat_each():
    rng = np.random.default_rng(3)
    a = {"latency_ms": {"p50": 1.0}, "samples": {
        "latency_ns": list((rng.lognormal(0, 0.1, 400) * 1e6).astype(int)),
        "repeat_counts": {"latency": [400]}}}
    b = {"latency_ms": {"p50": 1.0}, "samples": {
        "latency_ns": list((rng.lognormal(math.log(0.8), 0.1, 400) * 1e6).astype(int)),
        "repeat_counts": {"latency": [400]}}}
    r = ratio_of_medians(a, b)
    assert r.ci[0] < r.estimate < r.ci[1] < 1 and r.call == FASTER and not r.gated
    assert 0.75 < r.estimate < 0.85


def test_two_nodes_are_paired_and_their_environment_differences_listed(tmp_path, report):
    env_b = {**environment("node-b", cpu="Intel Xeon Gold 6240R"), "cpu_governor": "powersave",
             "kernel": "6.1.0-18-amd64"}
    env_a = {**environment("node-a"), "cpu_governor": "performance", "kernel": "6.1.0-18-amd64"}
    a = _run(tmp_path, "A", 1.0, host="node-a", env=env_a)
    b = _run(tmp_path, "B", 0.8, host="node-b", env=env_b, scales=SCALES_B)
    result = report("--compare", a, b)
    assert result.exit_code == 0, result.output
    assert "random-init / onnx-cpu @ node-a -> node-b" in result.stdout
    assert result.stdout.count(f": {FASTER}") == 2
    assert "cpu_model: AMD EPYC 7763 64-Core Processor -> Intel Xeon Gold 6240R" in result.stdout
    assert "cpu_governor: performance -> powersave" in result.stdout
    assert "kernel:" not in result.stdout                   # the same on both
    md = (b / "compare" / "compare.md").read_text()
    assert "| cpu_governor | performance | powersave |" in md


def test_variant_in_one_run_only_is_listed_not_compared(tmp_path, report):
    a = _run(tmp_path, "A", 1.0)
    recs = [record("onnx-cpu", host="node", host_kind="cpu_server", p50_ms=3.2,
                   scales=SCALES_B)]
    b = write_run(tmp_path, "B", {"node": {"kind": "cpu_server", "records": recs}})
    result = report("--compare", a, b)
    assert result.exit_code == 0, result.output
    assert "random-init / openvino @ node: A p50 1.70 ms, B p50 n/a ms, B/A n/a n/a: " \
           "only in run A" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--fail-above", "5%", "RUN"], "--fail-above needs --compare"),
    (["--compare", "A", "B", "--fail-above", "five"], "expected a positive percentage"),
    ([], "missing RUN_DIR"),
])
def test_usage_errors(tmp_path, report, args, message):
    a = _run(tmp_path, "A", 1.0)
    args = [str(a) if x in ("A", "B", "RUN") else x for x in args]
    result = report(*args)
    assert result.exit_code == ExitCode.USAGE and message in result.stderr


def test_threshold_parsing():
    assert parse_threshold("5%") == parse_threshold("5") == pytest.approx(0.05)
    assert parse_threshold("2.5 %") == pytest.approx(0.025)
    with pytest.raises(UsageError):
        parse_threshold("0%")


def test_make_compare_passes_both_runs_and_the_gate():
    out = subprocess.run(["make", "-n", "compare", "A=results/a", "B=results/b",
                          "FAIL_ABOVE=5%"], capture_output=True, text=True, check=True).stdout
    assert "bench-report --compare results/a results/b --fail-above 5%" in out
