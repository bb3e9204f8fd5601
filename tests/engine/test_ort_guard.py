"""The execution-provider guard: a provider that did not run is an error, never a number."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from servebench_engine import results
from servebench_engine.context import Context, Split
from servebench_engine.profiles import PROFILES
from servebench_engine.suite import run_variant
from servebench_engine.variants import onnx_runtime as ort_variants
from servebench_engine.variants.base import ProviderMismatch, VariantSkipped
from servebench_engine.variants.onnx_runtime import (CPU, CUDA, OnnxCpu, OnnxCuda,
                                                     OnnxOptimized, OnnxTensorrt, OnnxUnoptimized,
                                                     open_session, options_dict, session_options)

# Providers some onnxruntime build offers; the guard tests need one this build does not.
CANDIDATES = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "MIGraphXExecutionProvider",
              "ROCMExecutionProvider", "CoreMLExecutionProvider", "QNNExecutionProvider"]


def absent_provider() -> str:
    available = ort.get_available_providers()
    missing = [p for p in CANDIDATES if p not in available]
    if not missing:
        pytest.skip(f"this onnxruntime build offers every candidate provider ({available})")
    return missing[0]


def make_ctx(model, tmp_path) -> Context:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 3, 224, 224)).astype(np.float32)
    split = Split(images=images, labels=np.arange(4) % 11)
    return Context(workdir=tmp_path, profile=PROFILES["smoke"], model_onnx=model,
                   model_is_quantized=True, num_classes=11,
                   splits={"validation": split, "evaluation": split},
                   log=lambda m: None)


def run_record(variant_id, ctx):
    run = {"host": "h", "host_kind": "local", "profile": "smoke", "model": {}, "data": {},
           "environment": {}, "batch_size": 32}
    return run_variant(variant_id, ctx, run, say=lambda m: None)


def test_real_cpu_session_passes_the_guard(shared_int8):
    session = open_session(shared_int8, [CPU], session_options("disable_all", None))
    assert session.get_providers()[0] == CPU


# ORT warns when asked for a provider it lacks; that is the situation these tests create.
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_provider_ort_lacks_is_caught_even_though_ort_falls_back(shared_int8):
    wanted = absent_provider()
    # ORT itself does not refuse: it warns and runs the model on the CPU.
    fallback = ort.InferenceSession(str(shared_int8), providers=[wanted, CPU])
    assert fallback.get_providers()[0] == CPU
    with pytest.raises(ProviderMismatch, match=f"requested {wanted} but onnxruntime runs"):
        open_session(shared_int8, [wanted, CPU], session_options("all", None))


def test_gpu_variants_skip_with_the_reason_where_no_gpu(shared_int8, tmp_path):
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA: the no-GPU skip cannot happen here")
    ctx = make_ctx(shared_int8, tmp_path)
    for variant in (OnnxCuda(), OnnxTensorrt()):
        with pytest.raises(VariantSkipped, match="no NVIDIA GPU: CUDAExecutionProvider not in "
                                                 r"onnxruntime.get_available_providers\(\)"):
            variant.load(ctx)
    assert not (tmp_path / "tensorrt-cache").exists()


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_gpu_label_over_a_cpu_run_becomes_an_error_record(shared_int8, tmp_path, monkeypatch):
    """A build that *lists* CUDA but cannot create it (a missing libcudnn, say) falls back to CPU
    in ORT: the record must be an error, with no latency under the onnx-cuda label."""
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime really offers CUDA: the fallback cannot be provoked")
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, *real])
    # ...on a node whose driver is there (without libcuda.so.1 the variant skips: no GPU).
    monkeypatch.setattr(ort_variants, "_require_driver", lambda provider: None)
    record = run_record("onnx-cuda", make_ctx(shared_int8, tmp_path))
    assert record["status"] == "error" and record["error_type"] == "ProviderMismatch"
    # The real onnxruntime, told not to fall back to its CPU provider, refuses the session.
    assert ("requested CUDAExecutionProvider but onnxruntime would run some of the model's nodes "
            "on CPUExecutionProvider (session.disable_cpu_ep_fallback refused the session)") \
        in record["reason"]
    assert record["latency_ms"] is None and record["batch_throughput"] is None
    assert record["samples"]["latency_ns"] == [] and record["samples"]["batch_ns"] == []


def test_onnx_cpu_variant_records_providers(shared_int8, tmp_path):
    record = run_record("onnx-cpu", make_ctx(shared_int8, tmp_path))
    assert record["status"] == "ok", record["reason"]
    assert record["providers"] == {"requested": [CPU], "active": [CPU]}
    assert record["model_size_bytes"] == shared_int8.stat().st_size


def test_baseline_runs_with_onnxruntimes_default_session_options(shared_int8, tmp_path):
    """Seed 002's baseline is ort.InferenceSession(model, providers=['CPUExecutionProvider']):
    every session option as a fresh SessionOptions has it, and the record names the level."""
    served = OnnxCpu().load(make_ctx(shared_int8, tmp_path))
    defaults = options_dict(ort.SessionOptions())
    assert served.info["session_options"] == defaults
    assert served.info["graph_optimization_level"] == \
        ort.SessionOptions().graph_optimization_level.name == "ORT_ENABLE_ALL"


def test_unoptimized_variant_keeps_the_graph_as_exported(shared_int8, tmp_path):
    served = OnnxUnoptimized().load(make_ctx(shared_int8, tmp_path))
    assert served.info["graph_optimization_level"] == "ORT_DISABLE_ALL"
    changed = {k for k, v in served.info["session_options"].items()
               if v != options_dict(ort.SessionOptions())[k]}
    assert changed == {"graph_optimization_level"}


def test_onnx_optimized_saves_an_extended_graph_and_serves_it(shared_int8, tmp_path):
    ctx = make_ctx(shared_int8, tmp_path)
    variant = OnnxOptimized()
    variant.prepare(ctx)
    saved = variant.optimized_path(ctx)
    assert saved.is_file() and saved.parent == tmp_path
    served = variant.load(ctx)
    assert served.model_path == saved
    x = ctx.sample(2)
    baseline = OnnxUnoptimized().load(ctx).infer(x)
    np.testing.assert_allclose(served.infer(x), baseline, atol=1e-3)
    info = results.jsonable(served.info)
    assert info["graph_optimization_level"] == "ORT_ENABLE_EXTENDED"
    assert info["served_at_level"].startswith("ORT_ENABLE_ALL")
    assert variant.reused is False


def test_onnx_optimized_prepare_again_reuses_the_saved_graph(shared_int8, tmp_path):
    ctx = make_ctx(shared_int8, tmp_path)
    first = OnnxOptimized()
    first.prepare(ctx)
    saved = first.optimized_path(ctx)
    made = saved.stat().st_mtime_ns
    again = OnnxOptimized()  # a repeat: a new object, as in a new process
    again.prepare(ctx)
    assert again.reused is True and saved.stat().st_mtime_ns == made
    assert again.load(ctx).info == first.load(ctx).info
    # A damaged file is made again, not trusted.
    saved.write_bytes(saved.read_bytes()[:1000])
    third = OnnxOptimized()
    third.prepare(ctx)
    assert third.reused is False and third.load(ctx).infer(ctx.sample(1)).shape == (1, 11)
