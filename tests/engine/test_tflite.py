"""TFLite / LiteRT variant with the real ImageNet MobileNetV2 .tflite from the shared artifacts."""

from __future__ import annotations

import dataclasses

import pytest

from servebench_engine.variants.base import VariantSkipped
from servebench_engine.variants.tflite_variant import TfliteVariant, classify, interpreter_class
from tests.support.variant_context import preprocess, tiny_assets, variant_context  # noqa: F401

TFLITE = "models/mobilenet_v2_1.0_224_quantized_1_default_1.tflite"


@pytest.fixture
def tflite_model(shared_data):
    if interpreter_class() is None:
        pytest.skip("no TFLite runtime installed (ai-edge-litert or tflite-runtime)")
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


def test_without_a_tflite_model_the_variant_is_skipped(variant_context):
    with pytest.raises(VariantSkipped, match=r"no \.tflite model given \(--tflite-model\) and no converter installed"):
        TfliteVariant().prepare(variant_context)


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
