"""torch.compile with OpenVINO's backend, for real (torch and openvino from .venv)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from servebench_engine.variants.base import VariantSkipped
from servebench_engine.variants.torch_variants import COMPILED_BATCH, TorchCompileOpenVino
from tests.support.variant_context import tiny_assets, variant_context  # noqa: F401

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def dynamo_as_found():
    """Compiled graphs stay in dynamo's caches: they must not reach the other tests."""
    pytest.importorskip("openvino")
    yield
    torch._dynamo.reset()


def _eager(ctx, batch):
    with torch.inference_mode():
        return ctx.torch_model()(torch.from_numpy(batch)).numpy()


def test_openvino_backend_answers_like_eager_and_ran_on_openvino(variant_context):
    variant = TorchCompileOpenVino()
    variant.prepare(variant_context)
    served = variant.load(variant_context)

    # Five images run as one zero-padded batch of 32: a second compilation.
    for batch in (variant_context.sample(1), variant_context.sample(5)):
        logits, expected = served.infer(batch), _eager(variant_context, batch)
        if served.info["inference_precision"] == ["f32"]:
            np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-4)
        else:  # bf16 kernels (this machine's AMX CPU): up to 6 % of the largest logit here
            assert np.abs(logits - expected).max() < 0.1 * np.abs(expected).max() + 1e-3
            assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.75
    # Each answer is the caller's: the backend's output buffer, reused by the next call, is not.
    from openvino.frontend.pytorch.torchdynamo import execute
    compiled = len(execute.compiled_cache)
    first = served.infer(variant_context.sample(1))
    kept = first.copy()
    served.infer(variant_context.sample(2)[1:])
    np.testing.assert_array_equal(first, kept)
    # Calls after a shape's first one (freezing off again) compile nothing new.
    assert len(execute.compiled_cache) == compiled

    info = served.info
    assert info["inference_precision"] and set(info["inference_precision"]) <= {"f32", "bf16", "f16"}
    assert info["backend"] == "openvino" and info["dynamic"] is False
    assert info["options"]["aot_autograd"] is True and "sources must not be empty" in info["options_why"]
    assert info["options"]["config"] == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": "2"}
    assert set(info["first_call_s"]) == {"1", str(COMPILED_BATCH)}
    assert all(seconds > 0 for seconds in info["first_call_s"].values())
    # MobileNetV2 goes to OpenVINO whole: one subgraph per compiled shape, nothing left to torch,
    # and its weights are constants in it (frozen), the image its one input.
    assert info["openvino_partitions"] == {
        size: {"openvino_subgraphs": 1, "fell_back": 0, "ops_left_to_torch": 0, "openvino_inputs": 1}
        for size in ("1", str(COMPILED_BATCH))}
    assert info["freezing"] is True and "weights become OpenVINO constants" in info["options_why"]
    # Freezing was on only while each shape compiled: Inductor's (torch-compile's) is as found.
    assert torch._inductor.config.freezing is False
    assert info["openvino"].startswith("20") and served.model_path.suffix == ".pth"


def test_a_backend_that_falls_back_to_pytorch_is_an_error_not_an_openvino_number(
        variant_context, monkeypatch):
    """The backend runs a partition in PyTorch when OpenVINO fails on it, and says so only at
    debug level: the variant must refuse to be timed under its label."""
    from openvino.frontend.pytorch.torchdynamo import execute

    def broken(*args, **kwargs):
        raise RuntimeError("OpenVINO could not compile this partition")

    monkeypatch.setattr(execute, "openvino_execute", broken)
    variant = TorchCompileOpenVino()
    variant.prepare(variant_context)
    served = variant.load(variant_context)

    with pytest.raises(RuntimeError, match=r"torch.compile \(openvino\) failed for batch 1: .*"
                                           r"did not run this batch on OpenVINO.*'fell_back': 1"):
        served.infer(variant_context.sample(1))


def test_without_openvino_or_a_pytorch_model_it_is_skipped(variant_context, monkeypatch):
    no_model = dataclasses.replace(variant_context, torch_model=None)
    with pytest.raises(VariantSkipped, match=r"needs a PyTorch model; only an \.onnx was given"):
        TorchCompileOpenVino().prepare(no_model)
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    with pytest.raises(VariantSkipped, match="OpenVINO's torch.compile backend needs the openvino package"):
        TorchCompileOpenVino().prepare(variant_context)
    assert not list(variant_context.workdir.iterdir()), "saved the module for a variant that skips"
