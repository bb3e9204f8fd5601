"""TFLite / LiteRT variant: the real ImageNet MobileNetV2 .tflite from the shared artifacts, and
the engine's own model converted in the converter environment (.venv-litert)."""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest

from servebench_engine.variants.base import VariantSkipped
from servebench_engine.variants.tflite_variant import TfliteVariant
from tests.support.tflite_classify import classify
from tests.support.variant_context import preprocess, tiny_assets, variant_context  # noqa: F401

TFLITE = "models/mobilenet_v2_1.0_224_quantized_1_default_1.tflite"


@pytest.fixture
def tflite_model(shared_data, litert):
    return shared_data / TFLITE


def test_the_tflite_model_classifies_the_parrot_as_a_macaw(shared_data, tflite_model):
    index, label, score = classify(
        shared_data / "images" / "parrot.jpg", tflite_model, shared_data / "models" / "imagenet_labels.txt"
    )

    assert (index, label) == (89, "macaw")
    assert score > 0


def test_the_variant_takes_engine_batches_and_says_accuracy_cannot_be_scored(
    shared_data, tflite_model, variant_context
):
    ctx = dataclasses.replace(variant_context, tflite_model=tflite_model)
    variant = TfliteVariant()
    variant.prepare(ctx)
    served = variant.load(ctx)

    # The engine's own preprocessing of the photo (NCHW, ImageNet-normalised) must reach the
    # model as the right pixels: the answer is the same macaw.
    parrot = preprocess(shared_data / "images" / "parrot.jpg")[None]
    assert served.infer(parrot).argmax() == 89

    logits = served.infer(ctx.sample(3))  # more than max_batch: run one by one
    assert logits.shape == (3, 1001)
    assert served.max_batch == 1
    assert served.model_path == tflite_model
    info = served.info
    assert info["runtime"] == "ai_edge_litert" or info["runtime"] == "tflite_runtime"
    assert (info["input_dtype"], info["input_layout"]) == ("uint8", "NHWC")
    assert info["accuracy_unavailable"] == (
        "the .tflite model predicts 1001 classes, the data set has 11: "
        "its answers cannot be scored against these labels"
    )
    assert 0 < info["input_conversion_ms"] < 100


def test_without_a_tflite_model_or_a_converter_the_variant_is_skipped(variant_context, litert):
    with pytest.raises(VariantSkipped, match=r"no \.tflite model given \(--tflite-model\) and no "
                                             r"converter environment \(--tflite-converter-python"):
        TfliteVariant().prepare(variant_context)


def test_the_engine_model_is_converted_and_answers_as_the_onnx_model_does(converted_tflite):
    # The session's one conversion (conftest.py): its variant's first prepare.
    ctx, variant = converted_tflite.ctx, converted_tflite.variant
    served = variant.load(ctx)

    batch = ctx.sample(5)
    got = served.infer(batch)
    session = ort.InferenceSession(str(ctx.model_onnx), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    assert got.shape == expected.shape == (5, 11)
    # float32 both ways: the same network, only the order of float operations differs.
    np.testing.assert_allclose(got, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max())))
    assert (got.argmax(1) == expected.argmax(1)).all()

    assert served.model_path == ctx.workdir / "model.tflite" and served.model_path.is_file()
    assert served.max_batch is None  # a dynamic batch axis survived the conversion
    info = served.info
    assert info["tflite_source"] == "converted"
    assert (info["input_dtype"], info["input_layout"]) == ("float32", "NCHW")
    assert info["conversion"]["route"] == "onnx -> onnx2torch -> litert-torch"
    assert info["conversion"]["size_bytes"] == served.model_path.stat().st_size
    assert info["conversion"]["max_abs_diff"] < 1e-3
    assert "accuracy_unavailable" not in info  # the same 11 classes: scored like the others
    assert (ctx.workdir / "tflite-conversion.log").read_text().strip()
    assert variant.reused is False

    # A repeat (a new process, the same workdir) serves that file: no second conversion.
    again = TfliteVariant()
    started = time.perf_counter()
    again.prepare(ctx)
    assert again.reused is True and time.perf_counter() - started < 5
    assert again.load(ctx).info == info


def test_an_int8_model_is_not_converted_and_the_variant_says_why(variant_context, converter_python):
    ctx = dataclasses.replace(variant_context, tflite_converter_python=converter_python,
                              model_is_quantized=True)
    with pytest.raises(VariantSkipped, match="already INT8.*--tflite-model"):
        TfliteVariant().prepare(ctx)


def test_a_converter_that_fails_is_an_error_with_its_own_line(variant_context, litert):
    # The engine's own Python has neither onnx2torch nor litert-torch: a real failed conversion.
    ctx = dataclasses.replace(variant_context, tflite_converter_python=sys.executable)
    with pytest.raises(RuntimeError, match=r"TFLite conversion failed \(exit 1\): convert_tflite: "
                                           r"error: ModuleNotFoundError: .*onnx2torch"):
        TfliteVariant().prepare(ctx)
    assert not (ctx.workdir / "model.tflite").exists()


def test_bench_run_records_latency_and_a_null_accuracy_with_its_reason(
    shared_data, shared_int8, tflite_model, tmp_path, monkeypatch
):
    import json

    from servebench_engine import cli

    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    out = tmp_path / "run"
    code = cli.main(["--model", str(shared_int8), "--variants", "tflite", "--profile", "smoke",
                     "--tflite-model", str(tflite_model), "--out", str(out), "--threads", "1"])

    assert code == 0
    rec = json.loads((out / "tflite.json").read_text())
    assert rec["status"] == "ok", rec["reason"]
    assert rec["latency_ms"]["p50"] > 0 and rec["batch_throughput"] > 0
    assert rec["model_size_bytes"] == tflite_model.stat().st_size
    assert rec["accuracy"]["value"] is None and rec["accuracy"]["correct"] is None
    assert "predicts 1001 classes" in rec["accuracy"]["reason"]
    assert "accuracy_unavailable" not in rec["info"]  # said once, where the reader looks


def test_pixels_are_recovered_with_the_models_own_mean_and_std(
    shared_data, tflite_model, variant_context, tmp_path
):
    """A model whose data config normalises with mean 0 / std 1 (timm's MobileViT, say): the
    engine's batches hold pixels / 255, and the NHWC .tflite must still get the photo's pixels."""
    import onnx

    from servebench_engine.model import DATA_CONFIG_KEY, DataConfig

    config = DataConfig(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), source="timm")
    source = onnx.load(str(variant_context.model_onnx))
    onnx.helper.set_model_props(source, {DATA_CONFIG_KEY: config.to_json()})
    onnx.save(source, str(tmp_path / "model.onnx"))
    ctx = dataclasses.replace(variant_context, tflite_model=tflite_model,
                              model_onnx=tmp_path / "model.onnx")
    scores = {}
    for name, c, cfg in (("own", ctx, config), ("imagenet", dataclasses.replace(
            variant_context, tflite_model=tflite_model), DataConfig())):
        variant = TfliteVariant()
        variant.prepare(c)
        parrot = preprocess(shared_data / "images" / "parrot.jpg", cfg)[None]
        scores[name] = variant.load(c).infer(parrot)[0]
    assert scores["own"].argmax() == 89
    # The same pixels reach the model either way, so the same scores come out.
    np.testing.assert_allclose(scores["own"], scores["imagenet"], atol=1e-6)
