"""Energy in every record (issue 21 through the engine): the meter's windows cover exactly the
timed iterations of the single-sample and batch loops, lengthened to the meter's shortest valid
window where the profile's cap allows; where the node has no source the figures are null with
the reason."""

from __future__ import annotations

import time

import numpy as np
import pytest

from servebench_engine import energy, repeats, variant_run, variants
from servebench_engine.context import Context, Split
from servebench_engine.profiles import PROFILES
from servebench_engine.record import FIELDS, base_record
from servebench_engine.variants.base import Served, Variant

RUN = {"host": "h", "host_kind": "local", "profile": "smoke", "model": {"name": "m"},
       "data": {"source": "synthetic"}, "environment": {}, "batch_size": 32}
# Images every Counting variant has answered in this process: the fake meter's joules.
IMAGES = [0]


class Counting(Variant):
    id = "counting"
    description = "answers in 3 ms, counting the images it is given"

    def load(self, ctx):
        def infer(x):
            # 3 ms a call: the smoke loops' count caps (1000, 100 calls) outlast 0.2 s.
            time.sleep(0.003)
            IMAGES[0] += len(x)
            return np.zeros((len(x), ctx.num_classes), np.float32)

        return Served(infer=infer, model_path=None)


class ImageCounter:
    """A counter source reading one joule per image answered: a window's joules are the
    images answered inside it, so a window that also covered a warm-up or the accuracy pass
    would count too many."""

    name, kind, poll_s = "fake-counter", "counter", 0.05

    def __init__(self, period_s: float):
        self.period_s = period_s
        self.wrap_j = {"images": None}
        self.counted = ["images"]
        self.detail = {"fake": True}

    def read(self) -> dict:
        return {"images": float(IMAGES[0])}


class Meter(energy.Meter):
    def probe_periods(self, limit_s: float = 2.0) -> None:
        pass  # the counter only moves with inferences: probing would wait its 2 s for nothing


def context(tmp_path) -> Context:
    images = np.zeros((4, 3, 8, 8), np.float32)
    split = Split(images=images, labels=np.arange(4) % 11)
    return Context(workdir=tmp_path, profile=PROFILES["smoke"], model_onnx=tmp_path / "m.onnx",
                   model_is_quantized=False, num_classes=11,
                   splits={"evaluation": split, "validation": split}, log=lambda _m: None)


def measured(tmp_path, monkeypatch, meter) -> dict:
    monkeypatch.setitem(variants.REGISTRY, "counting", f"{__name__}:Counting")
    monkeypatch.setattr(variant_run, "detect_meter", lambda: meter)
    record = base_record("counting", run=RUN)
    variant_run.measure_variant("counting", context(tmp_path), record, lambda _m: None)
    return record


@pytest.mark.parametrize("period_s", [0.02, 0.1])
def test_each_window_covers_exactly_the_timed_iterations(tmp_path, monkeypatch, period_s):
    # 10 periods: 0.2 s fits the smoke loops' caps (0.3 s, 0.5 s): they are lengthened to it;
    # 1 s does not: the loops stop at their caps and the figures say they are too short.
    record = measured(tmp_path, monkeypatch, Meter([ImageCounter(period_s)]))
    single, batch = record["energy"], record["batch_energy"]
    timed = len(record["samples"]["latency_ns"])
    batches = len(record["samples"]["batch_ns"])
    assert single["inferences"] == timed and batch["inferences"] == batches * 32
    assert single["sources"][0]["joules"] == timed  # no warm-up call, no accuracy image
    assert batch["sources"][0]["joules"] == batches * 32
    assert single["window_s"] >= record["latency_ms"]["duration_s"]
    assert single["idle"]["reason"]  # the counter does not move while idle: not valid, said
    if period_s == 0.02:
        assert single["valid"] and batch["valid"], (single["reason"], batch["reason"])
        assert single["joules_per_inference"] == batch["joules_per_inference"] == 1.0
        assert record["latency_ms"]["duration_s"] >= 0.2 > PROFILES["smoke"].single.min_s
    else:
        for fig in (single, batch):
            assert not fig["valid"] and fig["joules_per_inference"] is None
            assert "shorter than 10 sensor periods" in fig["reason"]


def test_without_a_source_every_figure_is_null_with_the_reason(tmp_path, monkeypatch):
    meter = energy.detect()  # this node's own sources
    record = measured(tmp_path, monkeypatch, meter)
    for fig in (record["energy"], record["batch_energy"], record["energy"]["idle"]):
        assert fig["valid"] is bool(meter.sources)
        if not meter.sources:  # this machine: no powercap, no NVML
            assert fig["reason"] == meter.reason() and "no energy source" in fig["reason"]
    for fig in (record["energy"], record["batch_energy"]):
        assert (fig["joules_per_inference"] is None) is not meter.sources


def test_across_repeats_a_figure_is_the_valid_repeats_median_one_whole():
    field = next(f for f in FIELDS if f.name == "energy")
    merge = repeats.RULES[field.metadata["rule"]]

    def fig(jpi, valid=True):
        return {"valid": valid, "joules_per_inference": jpi if valid else None, "window_s": jpi}

    parts = [{"energy": fig(3.0)}, {"energy": fig(None, False)}, {"energy": fig(1.0)},
             {"energy": fig(2.0)}]
    out = merge(field, parts, {})
    assert (out["joules_per_inference"], out["window_s"], out["repeat"]) == (2.0, 2.0, 4)
    assert out["repeats_joules_per_inference"] == [3.0, None, 1.0, 2.0]
    assert merge(field, parts[:1] + parts[2:3], {})["repeat"] == 2  # the lower of two (1.0)
    nothing = merge(field, [{"energy": fig(None, False)}, {"energy": fig(None, False)}], {})
    assert nothing["repeat"] == 1 and not nothing["valid"]
