"""OpenVINO variant: runs for real (the runtime here; the ORT EP where that build is installed)."""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import pytest

from servebench_engine.variants.base import ProviderMismatch, VariantSkipped
from servebench_engine.variants.openvino_variant import OPENVINO_EP, OpenVinoVariant
from tests.support.variant_context import tiny_assets, variant_context  # noqa: F401


def test_openvino_serves_the_model_and_says_which_runtime(variant_context):
    variant = OpenVinoVariant()
    variant.prepare(variant_context)
    served = variant.load(variant_context)
    batch = variant_context.sample(4)

    logits = served.infer(batch)

    assert logits.shape == (4, 11)
    reference = ort.InferenceSession(str(variant_context.model_onnx), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"input": batch})[0]
    # Same network, another runtime: the same answers (loose: OpenVINO may pick bf16 kernels).
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max() + 1e-3
    assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.75
    if OPENVINO_EP in ort.get_available_providers():
        assert served.info["runtime"] == "onnxruntime-openvino"
        assert served.providers_active[0] == OPENVINO_EP
    else:
        assert served.info["runtime"] == "openvino"
        assert served.info["route"].startswith("openvino 20")
        assert served.info["config"]["INFERENCE_NUM_THREADS"] == "2"
        assert served.info["inference_precision"]
    assert served.model_path == variant_context.model_onnx
    # A different batch size right after: the dynamic batch axis works through OpenVINO too.
    assert served.infer(variant_context.sample(1)).shape == (1, 11)


def test_a_session_that_did_not_run_the_openvino_ep_is_an_error(variant_context, monkeypatch):
    """Where onnxruntime claims the EP but runs something else, the guard must refuse.

    The onnxruntime-openvino build cannot be installed beside this onnxruntime, so its listing is
    faked; onnxruntime itself, asked for a provider it lacks, really falls back to the CPU EP."""
    if OPENVINO_EP in ort.get_available_providers():
        pytest.skip("this onnxruntime really has the OpenVINO EP: no fallback to provoke")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [OPENVINO_EP, "CPUExecutionProvider"])

    with pytest.raises(ProviderMismatch, match="requested OpenVINOExecutionProvider but onnxruntime runs"):
        OpenVinoVariant().load(variant_context)


def test_without_any_openvino_the_variant_is_skipped(variant_context, monkeypatch):
    if OPENVINO_EP in ort.get_available_providers():
        pytest.skip("this onnxruntime has the OpenVINO EP, so the variant never needs the runtime")
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail

    with pytest.raises(VariantSkipped, match="neither onnxruntime's OpenVINOExecutionProvider"):
        OpenVinoVariant().load(variant_context)
