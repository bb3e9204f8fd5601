"""The load mode in the record (issue 20 through the engine): a bench-run whose --load-variants
names a variant records run_load's dict (a knee or the reason it has none) in its first repeat;
the others record none; the record validates against the results schema."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from servebench import schema
from servebench_engine import load_mode, profiles, variant_run, variants
from servebench_engine.record import base_record
from servebench_engine.variants.base import Served, Variant

from .test_energy_record import RUN, context


def test_a_smoke_bench_run_records_the_load_mode_of_the_variants_asked(bench_run, shared_int8,
                                                                       tmp_path, monkeypatch):
    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "onnx-cpu,onnx-optimized",
                  "--load-variants", "onnx-cpu", "--profile", "smoke", "--out", out,
                  "--load-bound-ms", "500")
    assert r.code == 0, r.err
    asked = json.loads((out / "onnx-cpu.json").read_text())
    other = json.loads((out / "onnx-optimized.json").read_text())
    for record in (asked, other):
        assert record["status"] == "ok", record["reason"]
        assert schema.problem("record", record) is None
    assert other["load"] is None
    load = asked["load"]
    assert (load["load_profile"], load["bound_ms"]) == ("smoke", 500.0)
    knee = load["knee"]
    assert knee is not None, load.get("reason")
    assert knee["knee_rps"] or "fails" in knee["found"]  # a knee, or why there is none
    assert knee["p99_bound_ms"] == 500.0
    assert load["best_closed_loop_rps"] > 0 and load["generator"]["max_issue_rps"] > 0
    assert load["closed_loop"]["points"] and load["open_loop"]["points"]


def test_the_profile_default_and_none_choose_the_load_variants():
    quick = profiles.PROFILES["quick"].load_variants
    assert load_mode.selected(None, quick) == ("onnx-cpu",)
    assert load_mode.selected("none", quick) == ()
    assert load_mode.selected("onnx-cpu,cpu", ())[0] == "onnx-cpu"
    assert profiles.PROFILES["smoke"].load_variants == ()


def test_an_unknown_load_variant_is_refused_before_anything_runs(bench_run, tmp_path):
    r = bench_run("--variants", "onnx-cpu", "--load-variants", "onnx-gpu9",
                  "--profile", "smoke", "--out", tmp_path / "out")
    assert r.code == 2 and "--load-variants: unknown variant id(s) onnx-gpu9" in r.err
    assert not (tmp_path / "out").exists()


class LoadsOnce(Variant):
    id = "loads-once"
    description = "one session per process: a second load raises"

    def load(self, ctx):
        if LOADS[0]:
            raise RuntimeError("this runtime holds one session per process")
        LOADS[0] += 1
        return Served(infer=lambda x: np.zeros((len(x), ctx.num_classes), np.float32),
                      model_path=None)


LOADS = [0]


def test_a_variant_that_cannot_be_loaded_again_records_no_knee_and_why(tmp_path, monkeypatch):
    monkeypatch.setitem(variants.REGISTRY, "loads-once", f"{__name__}:LoadsOnce")
    ctx = dataclasses.replace(context(tmp_path), load_variants="loads-once")
    record = base_record("loads-once", run=RUN)
    variant_run.measure_variant("loads-once", ctx, record, lambda _m: None)
    assert record["status"] == "ok" and record["latency_ms"]["count"] > 0
    assert record["load"]["knee"] is None
    assert record["load"]["reason"] == ("not served under load: this runtime holds one session "
                                        "per process")
