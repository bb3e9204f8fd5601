"""PyTorch variants: eager and torch.compile (Inductor) on the CPU, against the ONNX export."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from servebench_engine.variants.base import VariantSkipped
from servebench_engine.variants.torch_variants import COMPILED_BATCH, TorchCompile, TorchEager
from tests.support.variant_context import tiny_assets, variant_context  # noqa: F401


def _onnx_logits(ctx, batch):
    session = ort.InferenceSession(str(ctx.model_onnx), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": batch})[0]


def test_eager_serves_the_saved_model(variant_context):
    variant = TorchEager()
    variant.prepare(variant_context)
    served = variant.load(variant_context)
    batch = variant_context.sample(4)

    logits = served.infer(batch)

    assert logits.shape == (4, 11) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, _onnx_logits(variant_context, batch), rtol=1e-3, atol=1e-4)
    assert served.model_path.suffix == ".pth" and served.model_path.stat().st_size > 8_000_000
    assert served.info["threads"] == 2
    # Weights only, read back as data: nothing in the file needs the full unpickler.
    import torch
    assert served.info["served_as"] == "state_dict"
    assert all(isinstance(v, torch.Tensor)
               for v in torch.load(served.model_path, weights_only=True).values())


@pytest.mark.parametrize("variant", [TorchEager(), TorchCompile()], ids=lambda v: v.id)
def test_without_a_pytorch_model_the_torch_variants_are_skipped(variant_context, variant):
    ctx = dataclasses.replace(variant_context, torch_model=None)
    with pytest.raises(VariantSkipped, match=r"needs a PyTorch model; only an \.onnx was given"):
        variant.prepare(ctx)
    int8 = dataclasses.replace(ctx, model_is_quantized=True)
    with pytest.raises(VariantSkipped, match=r"the given model is an INT8 ONNX: PyTorch cannot"):
        variant.prepare(int8)


def test_prepare_again_reuses_the_saved_module_unless_it_is_damaged(variant_context):
    first = TorchEager()
    first.prepare(variant_context)
    saved = first.load(variant_context).model_path
    stamp = saved.stat().st_mtime_ns
    again = TorchEager()
    again.prepare(variant_context)
    assert again.reused is True and saved.stat().st_mtime_ns == stamp
    saved.write_bytes(b"not a pickle")
    third = TorchEager()
    third.prepare(variant_context)
    assert third.reused is False
    assert third.load(variant_context).infer(variant_context.sample(1)).shape == (1, 11)


@pytest.mark.slow
def test_compiled_model_answers_like_eager_for_every_batch_size(variant_context):
    """Two compilations (batch 1 and 32; tens of seconds each on two cores); other sizes are
    padded to 32."""
    variant = TorchCompile()
    variant.prepare(variant_context)
    served = variant.load(variant_context)

    one, five = variant_context.sample(1), variant_context.sample(5)
    np.testing.assert_allclose(served.infer(one), _onnx_logits(variant_context, one), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(served.infer(five), _onnx_logits(variant_context, five), rtol=1e-3, atol=1e-4)

    first_calls = served.info["first_call_s"]
    assert set(first_calls) == {"1", str(COMPILED_BATCH)}
    assert all(seconds > 0 for seconds in first_calls.values())
    assert served.info["backend"] == "inductor" and served.info["dynamic"] is False
