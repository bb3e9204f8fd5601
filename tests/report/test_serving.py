"""The load mode in the report (issue 20): the knee, the ceiling and the generator's cost as
columns, marked where the knee's p99 is not LoadGen-valid or unstable, n/a with the reason where
a record has no load figures; the records' ``load`` group has the engine's own shape."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest

from servebench.errors import ConfigError
from servebench.report import formatting as fmt
from servebench.report.load import load_run
from servebench.report.load_plot import load_plot
from servebench.report.targets import load_targets
from servebench.report.verdict import FAIL, INCONCLUSIVE, NA, PASS, judge
from servebench_engine.load import for_profile, run_load

from .runs import load_group, record, write_run
from .test_cost_energy import _rows

NOT_SERVED = {"load_profile": "full", "bound_ms": 20.0, "knee": None,
              "reason": "not served under load: RuntimeError: this runtime holds one session"}


def _keys(value, where="load") -> set[str]:
    """Every key path of a JSON document (a list's items folded into one path)."""
    if isinstance(value, dict):
        return {where} | {p for k, v in value.items() for p in _keys(v, f"{where}.{k}")}
    if isinstance(value, list):  # a list of numbers or strings is one figure
        return {where} | {p for v in value if isinstance(v, dict) for p in _keys(v, f"{where}[]")}
    return {where}


def test_the_synthetic_load_group_has_the_shape_of_a_real_run_load():
    """run_load on a model that serves in 2 ms: every key path the report's test records hold
    is one a real run writes (and the other way round), so the tests read what the engine writes."""
    def factory(_threads):
        return lambda _x: time.sleep(0.002)

    real = run_load(factory, np.zeros((1, 3, 8, 8), np.float32), for_profile("smoke"), cpus=1)
    real = {"load_profile": "smoke", "bound_ms": 20.0, **real}
    # Present only when the search found a knee by bisection (on a busy machine the smoke run
    # may find none: "below the bracket").
    by_search = {"load.knee.first_failing_rps", "load.knee.resolution_rps",
                 "load.generator.knee_share_of_max_issue"}
    assert _keys(load_group()) ^ _keys(real) <= by_search, _keys(load_group()) ^ _keys(real)


def _run(tmp_path, **loads):
    recs = [record(variant, p50_ms=2.0 + i, seed=i, load=load)
            for i, (variant, load) in enumerate(loads.items())]
    return write_run(tmp_path, "20261204T180000Z-load", {"localhost": {"kind": "local",
                                                                       "records": recs}})


def test_knee_ceiling_and_generator_columns_with_their_marks_and_reasons(tmp_path, report):
    valid, few = load_group(), load_group(count=300)
    unstable = copy.deepcopy(valid)
    at = next(p for p in unstable["open_loop"]["points"]
              if p["offered_rps"] == unstable["knee"]["knee_rps"])
    at["stable"] = False
    top = load_group(bound_ms=100.0, stable_below=1.01)   # passes at the search's top
    run = _run(tmp_path, **{"onnx-cpu": valid, "onnx-int8-static-aggressive": few,
                            "openvino": None, "tflite": NOT_SERVED, "onnx-optimized": unstable,
                            "onnx-int8-dynamic": top})
    assert report(run).exit_code == 0
    heads, rows = _rows((run / "report.md").read_text())
    cell = {v: rows[("localhost", v)] for _, v in rows}
    knee = valid["knee"]["knee_rps"]
    assert cell["onnx-cpu"]["knee req/s"] == f"{fmt.sig(knee)} (p99 ≤ 20.0 ms)"
    assert cell["onnx-int8-static-aggressive"]["knee req/s"].endswith(" †")
    assert cell["onnx-optimized"]["knee req/s"].endswith(" unstable")
    assert top["knee"]["found"].startswith("at the bracket's top")
    assert cell["onnx-int8-dynamic"]["knee req/s"] == \
        f"≥ {fmt.sig(top['knee']['knee_rps'])} (p99 ≤ 100 ms)"
    assert cell["openvino"]["knee req/s"] == "n/a (not run)"
    assert cell["tflite"]["knee req/s"] == "n/a (not served under load)"
    assert cell["onnx-cpu"]["ceiling req/s (closed loop)"] == \
        f"{fmt.sig(valid['best_closed_loop_rps'])} (1 session(s) × 2 thread(s), 1 in flight)"
    assert cell["onnx-cpu"]["knee / ceiling"] == \
        f"{valid['knee_share_of_ceiling'] * 100:.0f} %"
    gen = valid["generator"]
    assert cell["onnx-cpu"]["generator overhead p50 / p99 ms"] == \
        f"{fmt.sig(gen['overhead_ms']['p50'])} / {fmt.sig(gen['overhead_ms']['p99'])} at " \
        f"{fmt.sig(gen['rate_rps'])} req/s"
    assert cell["onnx-cpu"]["generator max req/s"] == fmt.sig(gen["max_issue_rps"])
    for col in ("ceiling req/s (closed loop)", "generator max req/s"):
        assert cell["tflite"][col] == "n/a (not served under load)"
        assert cell["openvino"][col] == "n/a (not run)"


def test_a_run_without_load_figures_has_no_load_columns(tmp_path, report):
    run = _run(tmp_path, **{"onnx-cpu": None})
    assert report(run).exit_code == 0
    heads, _ = _rows((run / "report.md").read_text())
    assert not {"knee req/s", "generator max req/s"} & set(heads)


# -- the verdict: knee_rps_at_least ---------------------------------------------------------

def _targets(tmp_path, p99_ms, rps):
    path = tmp_path / "targets.yml"
    path.write_text(f"targets:\n  serving:\n    title: Serving\n    judged_on: [cpu_server]\n"
                    f"    criteria:\n      p50_ms_below: 50\n"
                    f"      knee_rps_at_least: {{p99_ms: {p99_ms}, rps: {rps}}}\n")
    return path


def _judged(tmp_path, load, p99_ms, rps):
    """The knee criterion's result for one cpu_server record carrying ``load``."""
    run = write_run(tmp_path, "20261204T180000Z-knee", {"n1": {"kind": "cpu_server", "records": [
        record("onnx-cpu", host="n1", host_kind="cpu_server", n=700, load=load)]}})
    (judgement,) = judge(load_run(run), load_targets(_targets(tmp_path, p99_ms, rps))).judgements
    (result,) = [r for r in judgement.results if r.criterion.key == "knee_rps_at_least"]
    return judgement, result


def _with(load, rate, **changes):
    """``load`` with the open-loop point offered at ``rate`` changed."""
    load = copy.deepcopy(load)
    point = next(p for p in load["open_loop"]["points"] if p["offered_rps"] == rate)
    for key, value in changes.items():
        if key == "p99":
            point["latency_ms"]["p99"] = value
        else:
            point[key] = value
    return load


G = load_group()                      # knee 437.5 req/s at p99 <= 20 ms, 700 queries a point
TIGHT = load_group(bound_ms=5.0)      # its stable points over 5 ms from ~110 req/s up


@pytest.mark.parametrize("load, p99_ms, rps, outcome, why", [
    (G, 20, 400, PASS, None),
    (G, 20, 437.5, PASS, None),                         # at least: inclusive
    (G, 20, 450, INCONCLUSIVE, "the knee is under 450 req/s, but no stable point"),
    (TIGHT, 5, 300, FAIL, "> 5 ms at 109.4 req/s (a stable point, 700 queries)"),
    # Searched at 20 ms: no point over 10 ms at or below 300 req/s (undecided), but one at 375.
    (G, 10, 300, INCONCLUSIVE, "searched at p99 ≤ 20 ms, not the target's 10 ms"),
    (G, 10, 400, FAIL, "> 10 ms at 375 req/s"),
    (load_group(count=300), 20, 400, INCONCLUSIVE, "rests on 300 queries, fewer than MLPerf"),
    (_with(G, G["knee"]["knee_rps"], stable=False), 20, 400, INCONCLUSIVE,
     "the knee's point is not a stable point"),
    (load_group(bound_ms=3.0, stable_below=0.0), 3, 100, INCONCLUSIVE,
     "no knee (below the bracket: 31.2 req/s, its lowest rate, fails)"),
    (load_group(bound_ms=3.0), 3, 100, FAIL, "> 3 ms at 31.25 req/s"),
    (_with(G, 250.0, p99=25.0), 20, 400, INCONCLUSIVE, "the points disagree: the knee passes, "
     "yet p99 25 ms > 20 ms at 250 req/s"),
    (None, 20, 400, NA, "not run: bench-run --load-variants"),
    (NOT_SERVED, 20, 400, INCONCLUSIVE, "not served under load: RuntimeError"),
])
def test_the_knee_criterion_passes_fails_or_says_why_not(tmp_path, load, p99_ms, rps, outcome,
                                                         why):
    judgement, result = _judged(tmp_path, load, p99_ms, rps)
    assert (result.outcome, judgement.outcome) == (outcome, outcome), result.why
    assert (result.why is None) if why is None else (why in result.why), result.why
    # The value is the knee only where it was searched at the target's bound.
    same = load is not None and (load.get("knee") or {}).get("p99_bound_ms") == p99_ms
    assert result.value == (load["knee"]["knee_rps"] if same else None)


def test_the_knee_verdict_reads_in_the_report(tmp_path, report):
    run = write_run(tmp_path, "20261204T180000Z-knee", {"n1": {"kind": "cpu_server", "records": [
        record("onnx-cpu", host="n1", host_kind="cpu_server", n=700, load=TIGHT)]}})
    assert report(run, "--targets", _targets(tmp_path, 5, 300)).exit_code == 0
    md = (run / "report.md").read_text()
    assert "knee (p99 ≤ 5 ms) >= 300 req/s" in md                     # the target's rule
    over = next(p["latency_ms"]["p99"] for p in TIGHT["open_loop"]["points"]
                if p["offered_rps"] == 109.375)
    assert (f"knee (p99 ≤ 5 ms) {fmt.sig(TIGHT['knee']['knee_rps'])} req/s (needs >= 300 req/s): "
            f"p99 {over:.3g} ms > 5 ms at 109.4 req/s") in md


@pytest.mark.parametrize("value, expected", [
    ("500", "a mapping {p99_ms: <bound in ms>, rps: <requests/s>}"),
    ("{p99_ms: 20}", "a mapping {p99_ms"),
    ("{p99_ms: 20, rps: 5, extra: 1}", "a mapping {p99_ms"),
    ("{p99_ms: 0, rps: 500}", "knee_rps_at_least.p99_ms: expected a positive number"),
    ("{p99_ms: 20, rps: .nan}", "knee_rps_at_least.rps: expected a positive number"),
    ("{p99_ms: 20, rps: true}", "knee_rps_at_least.rps: expected a positive number"),
])
def test_a_malformed_knee_criterion_is_one_line_naming_the_key(tmp_path, value, expected):
    path = tmp_path / "t.yml"
    path.write_text("targets:\n  s:\n    judged_on: [cpu_server]\n    criteria:\n"
                    f"      knee_rps_at_least: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_targets(path)
    assert expected in str(err.value) and "\n" not in str(err.value)


# -- plots/load.png ---------------------------------------------------------------------------

def _expected(load: dict, variant: str, pct: str) -> set[tuple[str, float, float]]:
    """(label, achieved, latency) of every open-loop point of ``load``, the first of each offered
    rate (the search measures a curve's rate again from the same stream), unstable marked."""
    seen, out = set(), set()
    for p in load["open_loop"]["points"]:
        if p["offered_rps"] in seen:
            continue
        seen.add(p["offered_rps"])
        label = f"{variant} {pct}{'' if p['stable'] else ' unstable'}"
        out.add((label, p["achieved_rps"], p["latency_ms"][pct]))
    return out


def test_the_load_plot_draws_p50_and_p99_against_achieved_throughput_per_host(tmp_path):
    fast = load_group(service_ms=1.0)
    run = write_run(tmp_path, "20261204T180000Z-curves", {
        "n1": {"kind": "cpu_server", "records": [
            record("onnx-cpu", host="n1", host_kind="cpu_server", load=G),
            record("onnx-int8-static-aggressive", host="n1", host_kind="cpu_server", seed=1,
                   load=fast),
            record("openvino", host="n1", host_kind="cpu_server", seed=2, load=NOT_SERVED),
            record("onnx-optimized", host="n1", host_kind="cpu_server", seed=3)]},
        "localhost": {"kind": "local", "records": [record("onnx-cpu", load=TIGHT)]}})
    plot = load_plot(load_run(run), load_targets(_targets(tmp_path, 15, 300)),
                     tmp_path / "load.png")
    assert plot is not None and (tmp_path / "load.png").stat().st_size > 0
    by_panel: dict[str, set] = {}
    for panel, label, x, y in plot.drawn:
        by_panel.setdefault(panel, set()).add((label, x, y))
    n1, local = by_panel["n1 (cpu_server)"], by_panel["localhost (local)"]
    for variant, load in (("onnx-cpu", G), ("onnx-int8-static-aggressive", fast)):
        for pct in ("p50", "p99"):
            assert _expected(load, variant, pct) <= n1
    assert any(label.endswith("p99 unstable") for label, _, _ in n1)   # hollow points exist
    for pct in ("p50", "p99"):
        assert _expected(TIGHT, "onnx-cpu", pct) <= local
    # Nothing else: no point of a variant without load figures.
    assert {x for x in n1 if not x[0].startswith(("bound", "rate"))} == set().union(
        *(_expected(load, v, pct) for v, load in (("onnx-cpu", G),
                                                   ("onnx-int8-static-aggressive", fast))
          for pct in ("p50", "p99")))
    # The search's bound on each host; the knee target's bound and rate where it applies.
    assert ("bound: the knee search's p99 bound", 0.0, 20.0) in n1
    assert ("bound: the knee search's p99 bound", 0.0, 5.0) in local
    rule = "Serving: knee (p99 ≤ 15 ms) >= 300 req/s"
    assert {(f"bound: {rule}", 0.0, 15.0), (f"rate: {rule}", 300.0, 0.0)} <= n1 & local
    assert plot.missing == ("n1 / openvino: not served under load: RuntimeError: this runtime "
                            "holds one session",)


def test_the_report_shows_the_load_plot_only_with_load_figures(tmp_path, report):
    with_load = _run(tmp_path / "a", **{"onnx-cpu": G})
    without = _run(tmp_path / "b", **{"onnx-cpu": None})
    for run, shown in ((with_load, True), (without, False)):
        assert report(run).exit_code == 0
        assert (run / "plots" / "load.png").exists() is shown
        assert ("Latency under load" in (run / "report.md").read_text()) is shown


# -- --compare ------------------------------------------------------------------------------

def _compared(root, run_id, cpu_load):
    recs = [record("onnx-cpu", host="node", host_kind="cpu_server", p50_ms=3.2, n=300,
                   scales=(1.0, 1.012, 0.991), load=cpu_load),
            record("openvino", host="node", host_kind="cpu_server", p50_ms=1.7, seed=1, n=300,
                   scales=(1.0, 1.004, 0.996))]
    return write_run(root, run_id, {"node": {"kind": "cpu_server", "records": recs}})


def test_compare_shows_the_knee_and_the_ceiling_b_over_a_and_never_gates_them(tmp_path, report):
    slow = load_group(service_ms=2.6)         # B serves fewer requests/s under load
    a, b = _compared(tmp_path, "A", G), _compared(tmp_path, "B", slow)
    # Single-sample latency unchanged: the gate passes though B's knee dropped by a quarter.
    result = report("--compare", a, b, "--fail-above", "5%")
    assert result.exit_code == 0, result.output
    knee = slow["knee"]["knee_rps"] / G["knee"]["knee_rps"]
    ceiling = slow["best_closed_loop_rps"] / G["best_closed_loop_rps"]
    assert knee < 0.9 and ceiling < 0.9
    md = (b / "compare" / "compare.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    heads = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {cells[1]: dict(zip(heads, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:] if not line.startswith("|---"))}
    cpu, ov = rows["onnx-cpu"], rows["openvino"]
    assert (cpu["A knee req/s"], cpu["B knee req/s"]) == \
        (fmt.sig(G["knee"]["knee_rps"]), fmt.sig(slow["knee"]["knee_rps"]))
    assert cpu["B/A knee req/s"] == f"{knee:.3f}"
    assert cpu["B/A ceiling req/s (closed loop)"] == f"{ceiling:.3f}"
    assert ov["B/A knee req/s"] == ov["A knee req/s"] == fmt.NA
    assert "never gated" in md
    printed = next(line for line in result.stdout.splitlines() if "onnx-cpu @ node" in line)
    assert f"B/A knee req/s {knee:.3f}, " in printed


def test_a_load_group_of_the_wrong_types_reads_n_a_and_is_never_judged(tmp_path, report):
    """The schema asks only for an object: every figure of it is checked before it is shown,
    drawn or judged."""
    odd = {"load_profile": "full", "bound_ms": "20", "knee": {"knee_rps": -5, "queries": "many",
                                                              "p99_bound_ms": [20]},
           "open_loop": {"points": [1, "x", {"offered_rps": 100, "latency_ms": {"p99": "fast"}}]},
           "closed_loop": {"best": {"concurrency": "<b>4</b>"}}, "best_closed_loop_rps": -1,
           "layout": {"sessions": "<script>"}, "generator": {"overhead_ms": [1, 2]}}
    other = {**copy.deepcopy(G), "open_loop": {"points": "none"}}
    run = _run(tmp_path, **{"onnx-cpu": odd, "openvino": other})
    assert report(run, "--targets", _targets(tmp_path, 20, 100)).exit_code == 0
    _, rows = _rows((run / "report.md").read_text())
    cells = rows[("localhost", "onnx-cpu")]
    assert cells["knee req/s"] == "n/a (no knee: the search found none)"
    assert cells["ceiling req/s (closed loop)"] == "n/a (no closed-loop point)"
    assert cells["generator overhead p50 / p99 ms"] == "n/a (not measured)"
    assert not (run / "plots" / "load.png").exists()    # no point to draw
    for load in (odd, other):
        assert _judged(tmp_path / str(id(load)), load, 20, 100)[1].outcome == INCONCLUSIVE
