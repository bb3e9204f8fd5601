"""Honest runtimes (issue 19): dynamic INT8 passes the accuracy gate static INT8 does, and a GPU
label never sits on a session whose nodes partly run on ONNX Runtime's CPU provider."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from servebench_engine.context import Split
from servebench_engine.suite import run_variant
from servebench_engine.variants import onnx_runtime as ort_variants
from servebench_engine.variants.onnx_runtime import CPU, CUDA, NO_CPU_FALLBACK, TENSORRT
from servebench_engine.variants.quantize import cpu_session, predict
from tests.support.variant_context import NUM_CLASSES, make_context, tiny_assets  # noqa: F401


def _record(variant_id, ctx):
    run = {"host": "h", "host_kind": "local", "profile": ctx.profile.name, "model": {}, "data": {},
           "environment": {}, "batch_size": ctx.profile.batch_size}
    return run_variant(variant_id, ctx, run, say=lambda m: None)


def _ctx_with_fp32_labels(tiny_assets, tmp_path, tolerance):
    """Validation labels equal to the fp32 model's own answers (fp32 accuracy 1.0): any image
    dynamic INT8 answers differently is an accuracy drop."""
    images = tiny_assets.splits["validation"].images
    fp32 = predict(cpu_session(tiny_assets.onnx, 2), images)
    validation = Split(images, fp32, tiny_assets.splits["validation"].paths)
    ctx = make_context(tiny_assets, tmp_path / "work",
                       splits={**tiny_assets.splits, "validation": validation},
                       quantizer_python=None)
    return dataclasses.replace(ctx, profile=dataclasses.replace(
        ctx.profile, int8_dynamic_tolerance=tolerance))


def test_dynamic_int8_over_its_tolerance_is_an_error_record(tiny_assets, tmp_path):
    ctx = _ctx_with_fp32_labels(tiny_assets, tmp_path, tolerance=0.0)
    record = _record("onnx-int8-dynamic", ctx)
    assert record["status"] == "error", record
    assert record["error_type"] == "ToleranceNotMet"
    assert "no dynamic INT8 model kept the validation accuracy drop <= 0.0" in record["reason"]
    assert "onnxruntime's model drops" in record["reason"]
    assert record["latency_ms"] is None
    assert not (ctx.workdir / "onnx-int8-dynamic.onnx").exists()


def test_dynamic_int8_within_its_tolerance_records_the_gate(tiny_assets, tmp_path):
    ctx = _ctx_with_fp32_labels(tiny_assets, tmp_path, tolerance=0.99)
    record = _record("onnx-int8-dynamic", ctx)
    assert record["status"] == "ok", record["reason"]
    info = record["info"]
    assert info["tolerance"] == 0.99 and 0.0 < info["accuracy_drop"] <= 0.99, info
    assert info["int8_layers"] >= info["weighted_layers"] / 2 > 0


# -- GPU labels: the GPU is the edge this test fakes, ONNX Runtime's own CPU session runs -------

REFUSAL = ("[ONNXRuntimeError] : 1 : FAIL : This session contains graph nodes that are assigned "
           "to the default CPU EP, but fallback to CPU EP has been explicitly disabled by the user.")
CONFLICT = ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Conflicting session configuration: "
            "explicitly added the CPU EP to the list of session providers, but also disabled "
            "fallback to the CPU EP via session options.")


class FakeGpuOrt:
    """ORT's InferenceSession with a GPU provider whose kernels cover only ``gpu_ops``: it places
    the other nodes as ORT does (on the CPU provider, reported second in get_providers()), or,
    with the fallback switch, refuses with ORT's own words. The model runs in a real CPU session."""

    def __init__(self, gpu: str, gpu_ops: set[str]):
        self.gpu, self.gpu_ops, self.calls = gpu, gpu_ops, []
        self.real = ort.InferenceSession

    def __call__(self, path, sess_options=None, providers=None):
        names = [p if isinstance(p, str) else p[0] for p in providers]
        try:
            strict = sess_options.get_session_config_entry(NO_CPU_FALLBACK) == "1"
        except RuntimeError:  # unset: ORT's default, "0"
            strict = False
        self.calls.append((names, strict))
        if strict and CPU in names:
            raise RuntimeError(CONFLICT)
        on_cpu = [n.op_type for n in onnx.load(path).graph.node if n.op_type not in self.gpu_ops]
        if on_cpu and strict:
            raise RuntimeError(REFUSAL)
        # Real ORT refuses the switch beside a CPU-only session (CONFLICT), so it runs without.
        session = self.real(path, providers=[CPU])
        gpu = self.gpu

        class Session:
            def __getattr__(self, name):
                return getattr(session, name)

            def get_providers(self):
                return [gpu, CPU]

            def get_session_options(self):  # as ORT's: the options the session was made with
                return sess_options

        return Session()


def _model_with(tmp_path, op: str):
    """Flatten -> MatMul -> ``op``: 11 logits from an 3x8x8 image."""
    w = np.random.default_rng(0).standard_normal((192, NUM_CLASSES)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["mm"]),
         helper.make_node(op, ["mm"], ["output"])],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        [onnx.numpy_helper.from_array(w, "w")])
    path = tmp_path / f"{op}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _gpu_ctx(tiny_assets, tmp_path, model):
    images = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    split = Split(images, np.arange(4) % NUM_CLASSES)
    ctx = make_context(tiny_assets, tmp_path / "work", splits={"validation": split,
                                                               "evaluation": split})
    return dataclasses.replace(ctx, model_onnx=model, model_is_quantized=True)


@pytest.fixture
def fake_gpu(monkeypatch):
    def install(gpu):
        fake = FakeGpuOrt(gpu, {"Flatten", "MatMul", "Relu"})
        monkeypatch.setattr(ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
        monkeypatch.setattr(ort_variants, "_require_driver", lambda provider: None)
        monkeypatch.setattr(ort, "InferenceSession", fake)
        return fake
    return install


@pytest.mark.parametrize("variant_id,gpu", [("onnx-cuda", CUDA), ("onnx-tensorrt", TENSORRT)])
def test_gpu_variant_whose_model_partly_falls_back_to_cpu_is_an_error(
        tiny_assets, tmp_path, fake_gpu, variant_id, gpu):
    fake = fake_gpu(gpu)
    # Erf: an operator this provider's kernel list lacks, so ORT would place it on the CPU.
    record = _record(variant_id, _gpu_ctx(tiny_assets, tmp_path, _model_with(tmp_path, "Erf")))
    assert record["status"] == "error", record["reason"]
    assert record["error_type"] == "ProviderMismatch"
    assert f"requested {gpu} but onnxruntime would run some of the model's nodes on " \
           f"{CPU}" in record["reason"]
    assert record["latency_ms"] is None and record["samples"]["latency_ns"] == []
    names, strict = fake.calls[-1]
    assert strict and CPU not in names and names[0] == gpu


def test_gpu_variant_with_every_node_on_the_gpu_records_the_switch(tiny_assets, tmp_path,
                                                                   fake_gpu):
    fake = fake_gpu(CUDA)
    record = _record("onnx-cuda", _gpu_ctx(tiny_assets, tmp_path, _model_with(tmp_path, "Relu")))
    assert record["status"] == "ok", record["reason"]
    assert record["info"]["cpu_ep_fallback"] == f"disabled ({NO_CPU_FALLBACK}=1)"
    assert record["info"]["provider_chain"].startswith("CUDA only")
    assert fake.calls[-1] == ([CUDA], True)
