"""servebench.estimate: a host's run time from the profile or from earlier runs' measurements,
and the verdict against its lease (issue 21 item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from servebench import estimate
from servebench.estimate import Measured, Run
from servebench_engine.profiles import PROFILES
from servebench_engine.variants import GROUPS, REGISTRY

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 4, 18, 0, tzinfo=timezone.utc)
SELECTIONS = {**{v: [v] for v in REGISTRY}, **{g: list(ids) for g, ids in GROUPS.items()}}


def test_profile_arithmetic():
    full = PROFILES["full"]
    # process start + single warm-up and minimum + batch warm-up and minimum
    assert estimate.unit_s(full) == estimate.PROCESS_S + 2.0 + 10.0 + 1.0 + 10.0
    runs = [Run("cpu", ("onnx-cpu", "onnx-optimized")), Run("gpu", ("onnx-cuda",))]
    est = estimate.estimate_host(runs, full, models=2, repeats=3, history={}, timeout_s=14_400)
    # cpu: 2 models x 2 variants x 3 repeats = 12 units, gpu: 6; 4 + 2 (model, variant) pairs.
    engine = 18 * estimate.unit_s(full) + 6 * estimate.FIRST_REPEAT_S
    setup = estimate.NODE_SETUP_S + estimate.IMAGE_BUILD_S["cpu"] + estimate.IMAGE_BUILD_S["gpu"]
    assert est["engine_s"] == round(engine)
    assert est["setup_s"] == round(setup)
    assert est["estimate_s"] == round(engine + setup + estimate.COLLECT_S)
    # The time-out is per engine run and only reported.
    assert est["timeout_s"] == 2 * 14_400
    assert est["engine_cap_s"] > est["engine_s"]
    assert "12 units x 31 s from the full profile's minimums" in est["basis"][0]


def _earlier_run(results: Path, run_id: str, profile: str, span_s: int, node_type=None) -> None:
    run = results / run_id
    suite = run / "n1" / "runs" / "cpu" / "suite.json"
    suite.parent.mkdir(parents=True)
    host = {"host": "n1", "kind": "cpu_server", "status": "ok", "stage": None, "reason": None}
    if node_type:
        host["node_type"] = node_type
    (run / "run.json").write_text(json.dumps({"profile": profile, "hosts": [host]}))
    start = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    suite.write_text(json.dumps({
        "status": "complete", "models": ["a"], "variants": ["onnx-cpu", "onnx-optimized"], "repeats": 3,
        "started_at": start.isoformat().replace("+00:00", "Z"),
        "finished_at": (start + timedelta(seconds=span_s)).isoformat().replace("+00:00", "Z")}))


def test_measured_figures_are_preferred_and_named(tmp_path):
    _earlier_run(tmp_path, "20261201T100000Z-chi-full", "full", span_s=600)
    _earlier_run(tmp_path, "20261202T100000Z-chi-quick", "quick", span_s=60)       # other profile
    _earlier_run(tmp_path, "20261203T100000Z-chi-full", "full", span_s=6000, node_type="compute_zen3")
    history = estimate.measured(tmp_path, "full", "cpu_server", "compute_liqid")
    # 600 s over 1 model x 2 variants x 3 repeats; the other node type's newer run is not used.
    assert history == {"cpu": Measured(100.0, "20261201T100000Z-chi-full")}
    runs = [Run("cpu", ("onnx-cpu",)), Run("openvino", ("openvino",))]
    est = estimate.estimate_host(runs, PROFILES["full"], 1, 3, history, 14_400)
    assert est["engine_s"] == round(3 * 100 + 3 * estimate.unit_s(PROFILES["full"]) + estimate.FIRST_REPEAT_S)
    assert "measured in run 20261201T100000Z-chi-full" in est["summary"]
    assert "the full profile's minimums" in est["summary"]
    assert estimate.measured(tmp_path, "smoke", "cpu_server", None) == {}


def _request(tmp_path, lease_end, **extra):
    return {"profile": "full", "models": [], "repeats": "", "variants": [], "selections": SELECTIONS,
            "repo": str(REPO), "results_dir": str(tmp_path), "margin_s": 1800,
            "hosts": [{"name": "gpu-node", "kind": "gpu_server", "lease_end": lease_end,
                       "node_type": "compute_liqid", "deployment": "sb1", "runs": None}], **extra}


def test_short_lease_refused_with_both_times(tmp_path):
    out = estimate.check(_request(tmp_path, "2026-12-04T18:10+00:00"), now=NOW)
    host = out["hosts"][0]
    # The role's gpu_server runs (a template in its defaults): the CPU runs, then the gpu one.
    assert host["engine_runs"] == 3 and [b.split(":")[0] for b in host["basis"][:3]] == ["cpu", "openvino", "gpu"]
    assert not host["fits"] and host["left_s"] == 600
    (line,) = out["refused"]
    assert f"about {estimate.human(host['estimate_s'])}" in line and "10 min left" in line
    assert "2026-12-04 18:10 UTC" in line and "30 min margin" in line
    assert "the engine time-out alone (3 engine run(s) x 4 h 00 min = 12 h 00 min) exceeds the lease" in line
    assert "chi-extend --name sb1 --by" in line and "-e bench_ignore_lease=true" in line


def test_long_lease_fits_and_naive_time_is_utc(tmp_path):
    out = estimate.check(_request(tmp_path, "2026-12-06T18:00"), now=NOW)
    assert out["refused"] == [] and out["hosts"][0]["fits"] and out["hosts"][0]["left_s"] == 2 * 86_400
    assert out["warnings"] == []   # 12 h of time-out within 48 h


def test_variants_limit_and_bad_lease_end(tmp_path):
    out = estimate.check(_request(tmp_path, "soon", variants=["onnx-cpu"]), now=NOW)
    host = out["hosts"][0]
    assert host["engine_runs"] == 1 and host["basis"][0].startswith("cpu: 3 units")
    assert "lease_end 'soon' is not an ISO time" in out["refused"][0]


def test_negative_margin_is_refused(tmp_path):
    with pytest.raises(ValueError, match="bench_lease_margin_s must be 0 or more seconds"):
        estimate.check(_request(tmp_path, "2026-12-06T18:00", margin_s=-5), now=NOW)


def test_extension_and_durations():
    assert estimate.extension(60) == "30m"
    assert estimate.extension(1801) == "1h00m"
    assert estimate.extension(5400) == "1h30m"
    assert estimate.human(45) == "45 s" and estimate.human(600) == "10 min"
    assert estimate.human(5256) == "1 h 28 min"


def test_command_line_one_line_error():
    done = subprocess.run([sys.executable, "-m", "servebench.estimate"], input="not json",
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: cannot estimate the run's time") and done.stderr.count("\n") == 1


def test_load_mode_time_counted_per_named_variant_and_kind(tmp_path):
    """The load sweep is the first repeat's longest part on a big node: the estimate adds its
    settings-derived least per (model, variant) it names, its most to the cap, and nothing
    for ``none`` or for variants the host does not run."""
    full = PROFILES["full"]
    runs = [Run("cpu", ("onnx-cpu", "onnx-optimized"))]
    plan = estimate.load_plan(full, "cpu_server", None, SELECTIONS)   # full's own: onnx-cpu + INT8
    assert "onnx-cpu" in plan.variants and plan.least_s > 0 and plan.most_s > plan.least_s
    # The sweep grows with the CPUs: the Pi's 4 cores, the edge load profile, sweep less.
    edge = estimate.load_plan(full, "edge", None, SELECTIONS)
    assert "edge load profile, 4 CPUs" in edge.basis and "full load profile, 128 CPUs" in plan.basis
    without = estimate.estimate_host(runs, full, 2, 3, {}, 14_400)
    with_load = estimate.estimate_host(runs, full, 2, 3, {}, 14_400, plan)
    # 2 models x 1 named variant this run has (onnx-optimized is not named).
    assert with_load["engine_s"] - without["engine_s"] == round(2 * plan.least_s)
    assert with_load["engine_cap_s"] - without["engine_cap_s"] >= round(2 * plan.most_s) - 1
    assert plan.basis in with_load["basis"] and "2 load sweep(s)" in with_load["basis"][0]
    assert estimate.load_plan(full, "cpu_server", "none", SELECTIONS).variants == frozenset()
    named = estimate.load_plan(full, "cpu_server", "onnx-optimized", SELECTIONS)
    assert estimate.estimate_host(runs, full, 2, 3, {}, 14_400, named)["engine_s"] == with_load["engine_s"]
    # Through check(): a host's own benchmark_load_variants, as lease_check.yml passes it.
    request = _request(tmp_path, "2026-12-06T18:00")
    request["hosts"][0]["load_variants"] = "none"
    quiet = estimate.check(request, now=NOW)["hosts"][0]
    request["hosts"][0]["load_variants"] = None
    loud = estimate.check(request, now=NOW)["hosts"][0]
    assert loud["engine_s"] > quiet["engine_s"] and not any("load mode" in b for b in quiet["basis"])


def test_planned_load_time_brackets_the_knee_search():
    from servebench_engine.load import for_profile, planned_s
    from servebench_engine.load.knee import max_probes

    smoke = for_profile("smoke")
    # start 0.5 halves to 0.25, 0.125, 0.0625 (>= the 0.05 floor): 4 bracket probes, the top, 1 step.
    assert max_probes(smoke) == 4 + 1 + 1
    least, most = planned_s(smoke, cpus=2)
    # 2 layouts x 2 concurrency levels, no curve rates, one knee probe, the generator's point.
    assert least == pytest.approx((4 + 0 + 1 + 1) * (0.1 + 3 * 0.2))
    assert most > least and planned_s(smoke, cpus=8)[0] > least


def test_expected_engine_time_past_the_time_out_warns(tmp_path):
    request = _request(tmp_path, "2026-12-30T18:00", profile="quick")
    request["hosts"][0]["load_variants"] = "all"
    out = estimate.check(request, now=NOW)
    (warning,) = [w for w in out["warnings"] if "engine time-out" in w]
    assert "engine run(s) cpu (" in warning and "(20 min)" in warning
    assert "benchmark_load_variants" in warning
    request["hosts"][0]["load_variants"] = "none"
    assert estimate.check(request, now=NOW)["warnings"] == []
