"""OpenVINO variant: runs for real (the runtime here serves the IR it converted; the ORT EP route,
which the onnxruntime-openvino build takes where the openvino package is absent, is faked)."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest

from servebench_engine.variant_run import model_size
from servebench_engine.variants import openvino_variant, reuse
from servebench_engine.variants.base import ProviderMismatch, VariantSkipped
from servebench_engine.variants.openvino_variant import OPENVINO_EP, OpenVinoVariant
from tests.support.variant_context import tiny_assets, variant_context  # noqa: F401


def _prepared(ctx) -> OpenVinoVariant:
    variant = OpenVinoVariant()
    variant.prepare(ctx)
    return variant


@pytest.fixture
def without_openvino(monkeypatch):
    """As on a node with onnxruntime-openvino and no openvino package."""
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail


def test_openvino_converts_the_onnx_to_ir_and_serves_the_ir(variant_context):
    variant = _prepared(variant_context)
    served = variant.load(variant_context)
    batch = variant_context.sample(4)

    logits = served.infer(batch)

    assert logits.shape == (4, 11)
    reference = ort.InferenceSession(str(variant_context.model_onnx), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"input": batch})[0]
    # Same network, another runtime: the same answers (loose: OpenVINO may pick bf16 kernels).
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max() + 1e-3
    assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.75
    assert served.info["runtime"] == "openvino"
    assert served.info["route"].startswith("openvino 20") and "OpenVINO IR" in served.info["route"]
    assert served.info["config"]["INFERENCE_NUM_THREADS"] == "2"
    assert served.info["inference_precision"] in ("f32", "bf16", "f16")
    # The .xml is served; the record's size counts the .bin beside it, which holds the weights
    # in fp32 (MobileNetV2: 2.2 M parameters, ~8.9 MB), not fp16's half.
    xml, weights = served.model_path, served.model_path.with_suffix(".bin")
    assert xml == variant.ir_path(variant_context) and xml.suffix == ".xml" and weights.is_file()
    ir = served.info["ir"]
    assert ir["compress_to_fp16"] is False and ir["seconds"] > 0
    assert ir["openvino"] in served.info["route"]
    assert model_size(xml) == ir["size_bytes"] == xml.stat().st_size + weights.stat().st_size
    assert weights.stat().st_size == ir["bin_bytes"] > 8_000_000
    # A different batch size right after: the dynamic batch axis works through the IR too.
    assert served.infer(variant_context.sample(1)).shape == (1, 11)


def test_a_second_prepare_reuses_the_ir_unless_its_weights_are_damaged(variant_context):
    first = _prepared(variant_context)
    xml = first.ir_path(variant_context)
    weights = xml.with_suffix(".bin")
    stamps = (xml.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    manifest = json.loads(reuse.manifest_path(xml).read_text())
    assert set(manifest["companions"]) == {weights.name}
    assert first.reused is False

    again = _prepared(variant_context)

    assert again.reused is True and (xml.stat().st_mtime_ns, weights.stat().st_mtime_ns) == stamps
    assert again.load(variant_context).info["ir"] == first.load(variant_context).info["ir"]
    # A truncated .bin under an intact .xml (a copy cut short): converted again, not served.
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    third = _prepared(variant_context)
    assert third.reused is False
    assert weights.stat().st_size == third.load(variant_context).info["ir"]["bin_bytes"] > 8_000_000
    assert third.load(variant_context).infer(variant_context.sample(1)).shape == (1, 11)


def test_without_the_openvino_package_the_ep_serves_the_onnx_and_says_no_ir(
        variant_context, monkeypatch, without_openvino):
    """The onnxruntime-openvino build cannot be installed beside this onnxruntime: its listing
    is faked, and a CPU session stands in for its EP session to read the route."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [OPENVINO_EP, "CPUExecutionProvider"])
    monkeypatch.setattr(openvino_variant, "open_session", lambda model, providers, options:
                        ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]))
    variant = _prepared(variant_context)

    served = variant.load(variant_context)

    assert served.info["runtime"] == "onnxruntime-openvino" and served.info["ir"] is None
    assert "no IR made, the openvino Python package is not installed" in served.info["route"]
    assert served.model_path == variant_context.model_onnx
    assert not list(variant_context.workdir.glob("*.xml"))


def test_a_session_that_did_not_run_the_openvino_ep_is_an_error(variant_context, monkeypatch,
                                                                without_openvino):
    """Where onnxruntime claims the EP but runs something else, the guard must refuse:
    onnxruntime itself, asked for a provider it lacks, really falls back to the CPU EP."""
    if OPENVINO_EP in ort.get_available_providers():
        pytest.skip("this onnxruntime really has the OpenVINO EP: no fallback to provoke")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [OPENVINO_EP, "CPUExecutionProvider"])

    with pytest.raises(ProviderMismatch, match="requested OpenVINOExecutionProvider but onnxruntime runs"):
        _prepared(variant_context).load(variant_context)


def test_without_any_openvino_the_variant_is_skipped(variant_context, without_openvino):
    if OPENVINO_EP in ort.get_available_providers():
        pytest.skip("this onnxruntime has the OpenVINO EP, so the variant never needs the runtime")

    with pytest.raises(VariantSkipped, match="neither the openvino runtime .* nor onnxruntime's "
                                             "OpenVINOExecutionProvider"):
        _prepared(variant_context).load(variant_context)


def test_load_before_prepare_is_a_bug_not_a_route(variant_context):
    with pytest.raises(RuntimeError, match="load\\(\\) before prepare\\(\\) made the IR"):
        OpenVinoVariant().load(variant_context)
