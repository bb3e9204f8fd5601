"""The load mode in the report (issue 20): the knee, the ceiling and the generator's cost as
columns, marked where the knee's p99 is not LoadGen-valid or unstable, n/a with the reason where
a record has no load figures; the records' ``load`` group has the engine's own shape."""

from __future__ import annotations

import copy
import time

import numpy as np

from servebench.report import formatting as fmt
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
    assert _keys(load_group()) == _keys(real), _keys(load_group()) ^ _keys(real)


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
