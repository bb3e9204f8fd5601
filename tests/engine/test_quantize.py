"""INT8 variants: real quantisation through both routes, served by the current onnxruntime."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from servebench_engine.context import Split
from servebench_engine.variants.quantize import (
    Int8Dynamic,
    Int8StaticAggressive,
    Int8StaticConservative,
    ToleranceNotMet,
    _exclusion_schedule,
    cpu_session,
    predict,
)
from tests.support.helper_envs import helper_python
from tests.support.variant_context import make_context, tiny_assets, variant_context  # noqa: F401

def _inc_python() -> str:
    """The Neural Compressor environment's Python, or a skip saying why it cannot be used."""
    return helper_python(".venv-inc", "import neural_compressor, onnx, onnxruntime")


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _serve(variant, ctx, batch: int = 3) -> tuple[object, np.ndarray]:
    variant.prepare(ctx)
    served = variant.load(ctx)
    return served, served.infer(ctx.sample(batch))


def test_dynamic_int8_is_a_conv_integer_model_served_on_cpu(variant_context):
    served, logits = _serve(Int8Dynamic(), variant_context)

    assert logits.shape == (3, 11) and np.isfinite(logits).all()
    assert "ConvInteger" in _op_types(served.model_path)
    assert served.providers_active[0] == "CPUExecutionProvider"
    assert served.info["route"].startswith("onnxruntime.quantization ")
    assert "quantize_dynamic" in served.info["route"]
    assert served.info["routes_not_taken"] == [
        "neural-compressor: no quantiser environment (quantizer_python unset)"]
    # Weights went to 8 bits: the file is about a quarter of the fp32 one.
    assert served.model_path.stat().st_size < 0.4 * variant_context.model_onnx.stat().st_size
    assert 0.0 <= served.info["top1_agreement_with_fp32"] <= 1.0


def test_static_int8_fallback_route_meets_its_tolerance(variant_context):
    ctx = dataclasses.replace(variant_context, quantizer_python=None)
    served, logits = _serve(Int8StaticAggressive(), ctx)

    assert logits.shape == (3, 11)
    assert {"QuantizeLinear", "DequantizeLinear"} <= _op_types(served.model_path)
    info = served.info
    assert info["route"].startswith("onnxruntime.quantization ")
    assert "quantize_static QDQ per-channel" in info["route"]
    assert info["routes_not_taken"] == ["neural-compressor: no quantiser environment (quantizer_python unset)"]
    assert info["tolerance"] == 0.05
    assert info["accuracy_drop"] <= 0.05
    assert info["int8_layers"] == info["weighted_layers"] - len(info["fp32_layers"]) > 0
    assert info["fp32_accuracy"] - info["int8_accuracy"] == pytest.approx(info["accuracy_drop"])
    assert info["trials"] == len(info["trial_history"]) >= 1
    assert sorted(p.name for p in ctx.workdir.iterdir()) == [
        "onnx-int8-static-aggressive.onnx", "onnx-int8-static-aggressive.onnx.manifest.json"]
    assert info["calibration_images"] == 16 and info["validation_images"] == 22


def test_static_int8_neural_compressor_route(variant_context):
    ctx = dataclasses.replace(variant_context, quantizer_python=_inc_python())
    served, logits = _serve(Int8StaticConservative(), ctx)

    assert logits.shape == (3, 11)
    assert "QLinearConv" in _op_types(served.model_path)
    info = served.info
    assert info["int8_layers"] >= info["weighted_layers"] / 2 > 0
    assert info["route"].startswith("neural-compressor 3.7.1 static QOperator, quant_level 1, ")
    assert info["quantiser_env"]["onnx"] == "1.16.2"
    assert info["tolerance"] == 0.01 and info["accuracy_drop"] <= 0.01
    assert info["routes_not_taken"] == []
    # The tutorial's settings (seed 002), recorded; the quick profile calibrates on 16 images.
    assert info["quantiser_settings"] == {
        "approach": "static", "quant_format": "QOperator", "quant_level": 1,
        "recipes": {"graph_optimization_level": "ENABLE_EXTENDED"},
        "calibration_sampling_size": 16, "calibration_sampling_size_asked": 16}
    assert "quant_level 1, graph_optimization_level ENABLE_EXTENDED, calibration sampling " \
        "size 16" in info["route"]
    # Only the served model, its manifest and the tuning log stay; scratch is gone.
    assert sorted(p.name for p in ctx.workdir.iterdir()) == [
        "onnx-int8-static-conservative.neural-compressor.log",
        "onnx-int8-static-conservative.onnx",
        "onnx-int8-static-conservative.onnx.manifest.json",
    ]


@pytest.mark.slow
def test_dynamic_int8_neural_compressor_route(variant_context):
    ctx = dataclasses.replace(variant_context, quantizer_python=_inc_python())
    served, logits = _serve(Int8Dynamic(), ctx)

    assert logits.shape == (3, 11) and np.isfinite(logits).all()
    assert {"DynamicQuantizeLinear", "ConvInteger"} <= _op_types(served.model_path)
    info = served.info
    assert info["route"] == "neural-compressor 3.7.1 dynamic QOperator, quant_level 1"
    assert info["quantiser"] == "neural-compressor" and info["routes_not_taken"] == []
    assert info["quantiser_settings"]["approach"] == "dynamic"
    assert info["quantiser_settings"]["recipes"] == {"graph_optimization_level": "ENABLE_EXTENDED"}
    assert 0.0 <= info["top1_agreement_with_fp32"] <= 1.0


@pytest.mark.parametrize(
    "route", ["onnxruntime", pytest.param("neural-compressor", marks=pytest.mark.slow)]
)
def test_unreachable_tolerance_fails_the_variant(tiny_assets, tmp_path, route):
    """Labels equal to the fp32 model's own answers make its accuracy 1.0; with tolerance 0 the
    INT8 model must then agree on every image, which three trials of either route cannot reach
    on this random network. The variant must refuse, not serve the best it found."""
    fp32 = predict(cpu_session(tiny_assets.onnx, 2), tiny_assets.splits["validation"].images)
    validation = Split(tiny_assets.splits["validation"].images, fp32, tiny_assets.splits["validation"].paths)
    ctx = make_context(
        tiny_assets, tmp_path / "work",
        splits={**tiny_assets.splits, "validation": validation},
        quantizer_python=_inc_python() if route == "neural-compressor" else None,
    )
    variant = Int8StaticConservative(tolerance=0.0, max_trials=3)

    with pytest.raises(ToleranceNotMet, match=r"no INT8 model kept the validation accuracy drop <= 0\.0") as failure:
        variant.prepare(ctx)

    message = str(failure.value)
    assert "onnxruntime loop: 3 trials, best drop" in message
    if route == "neural-compressor":
        # Either no configuration met it, or only one that kept most layers fp32 (refused).
        assert "neural-compressor tried" in message or "neural-compressor met the tolerance only by keeping" in message
    assert not (ctx.workdir / "onnx-int8-static-conservative.onnx").exists()
    with pytest.raises(RuntimeError, match="load\\(\\) before prepare\\(\\)"):
        variant.load(ctx)


@pytest.mark.parametrize("variant", [Int8Dynamic, Int8StaticAggressive, Int8StaticConservative])
def test_given_int8_model_is_served_as_given_never_quantised_again(variant_context, shared_int8,
                                                                   variant):
    ctx = dataclasses.replace(variant_context, model_onnx=shared_int8, model_is_quantized=True)
    v = variant()
    served, logits = _serve(v, ctx)

    assert served.model_path == shared_int8 and logits.shape == (3, 11)
    info = served.info
    assert info["route"] == ("given (already INT8, static QOperator): served as given, "
                             "not re-quantised")
    assert info["quantiser"] == "given" and info["tolerance_checked"] is False
    assert info["kind_matches_variant"] is (v.kind == "static")
    assert info["int8_layers"] >= info["weighted_layers"] / 2 > 0
    assert list(ctx.workdir.iterdir()) == []  # nothing made


def test_prepare_again_reuses_the_int8_model_and_redoes_a_damaged_one(variant_context):
    """A repeat runs prepare in a fresh process with the same workdir: it must serve the model
    the first prepare made, with the same info, and never trust a damaged file."""
    from servebench_engine.profiles import PROFILES
    from servebench_engine.variants import reuse

    ctx = dataclasses.replace(variant_context, profile=PROFILES["smoke"])
    first = Int8StaticAggressive()
    first.prepare(ctx)
    made = first.load(ctx)
    out = made.model_path
    stamp = out.stat().st_mtime_ns

    reuse._cache.clear()  # as in a new process
    again = Int8StaticAggressive()
    again.prepare(ctx)
    assert again.reused is True and out.stat().st_mtime_ns == stamp
    assert again.load(ctx).info == made.info

    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])  # a half-written model
    third = Int8StaticAggressive()
    third.prepare(ctx)
    assert third.reused is False
    assert third.load(ctx).infer(ctx.sample(1)).shape == (1, 11)
    # Another tolerance is another model: not reused either.
    other = Int8StaticAggressive(tolerance=0.5)
    other.prepare(ctx)
    assert other.reused is False


def test_exclusion_schedule_grows_from_the_ends_then_by_sensitivity():
    layers = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    ranked = ["c", "a", "d", "e", "b", "j", "g", "f", "h", "i"]

    assert list(_exclusion_schedule(layers, lambda: ranked, max_excluded=10)) == [
        [],
        ["a", "j"],
        ["a", "j", "c", "d"],
        ["a", "j", "c", "d", "e", "b", "g", "f"],
        ["a", "j", "c", "d", "e", "b", "g", "f", "h", "i"],
    ]
    # Capped: at most half the layers may stay fp32, however many trials the budget allows.
    assert list(_exclusion_schedule(layers, lambda: ranked, max_excluded=5))[-1] == ["a", "j", "c", "d", "e"]


def test_tolerance_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="tolerance must be in"):
        Int8StaticAggressive(tolerance=1.5)


def test_a_profile_without_a_tuning_budget_is_refused_not_given_another_profiles_budget():
    import dataclasses

    from servebench_engine.profiles import PROFILES
    from servebench_engine.variants.quantize_common import budget_for

    assert budget_for(PROFILES["smoke"]).max_trials == 2
    with pytest.raises(ValueError, match="no INT8 tuning budget for profile 'custom'"):
        budget_for(dataclasses.replace(PROFILES["quick"], name="custom"))
