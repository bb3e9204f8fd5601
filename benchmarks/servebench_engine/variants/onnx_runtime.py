"""ONNX Runtime variants: the CPU baseline, offline graph optimisation, CUDA and TensorRT.

All of them open sessions through :func:`open_session`, whose guard is the project's rule:
the execution provider asked for must be the one ORT put first (``session.get_providers()[0]``).
ORT itself silently falls back to CPU when a provider cannot be created (a CPU-only build asked
for CUDA, a missing CUDA library); that would report a CPU number under a GPU label, so it is a
:class:`ProviderMismatch`, recorded as an error.

Optimisation levels, chosen so the pair shows what graph optimisation buys:

* ``onnx-cpu``: ``ORT_DISABLE_ALL``, the exported graph exactly as it is. This is the baseline,
  *not* ORT's default (``ORT_ENABLE_ALL``, which is what ``onnx-optimized`` measures).
* ``onnx-optimized``: ``ORT_ENABLE_ALL`` run once, offline, in ``prepare``, and the optimised
  graph saved with ``optimized_model_filepath``; ``load`` serves that file with optimisation
  disabled, so what is measured (size and speed) is the saved artifact and its cold start has
  no optimisation in it. ENABLE_ALL includes the NCHWc layout transforms, which ORT warns are
  specific to the CPU that made them: the file is made and served on the same host.
* ``onnx-cuda`` / ``onnx-tensorrt``: the providers' own defaults (ORT applies ENABLE_ALL);
  TensorRT lists CUDA then CPU after it for the nodes it cannot take, and keeps its engine
  cache in the artifacts folder so a second run skips the engine build.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from ..context import Context
from .base import ProviderMismatch, Served, Variant, VariantSkipped

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def require_provider(provider: str) -> None:
    """Skip (not fail) where this onnxruntime build cannot offer the provider at all."""
    available = ort.get_available_providers()
    if provider in available:
        _require_driver(provider)
        return
    if provider == TENSORRT and CUDA in available:
        raise VariantSkipped(f"no TensorRT: {provider} not in onnxruntime."
                             f"get_available_providers() {available} (install the TensorRT "
                             "libraries onnxruntime-gpu needs)")
    raise VariantSkipped(
        f"no NVIDIA GPU: {CUDA} not in onnxruntime.get_available_providers() {available} "
        "(needs a GPU and the onnxruntime-gpu build)")


def _require_driver(provider: str) -> None:
    """onnxruntime-gpu lists its GPU providers wherever it is installed; they load only with the
    NVIDIA driver's libcuda.so.1 (mounted into a container by --gpus). Without it: no GPU here."""
    if provider not in (CUDA, TENSORRT):
        return
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise VariantSkipped(f"no NVIDIA GPU: {provider} is built in, but the driver's "
                             f"libcuda.so.1 cannot be loaded ({exc})") from None


def session_options(level: str, threads: int | None,
                    optimized_model_filepath: Path | None = None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    if threads:
        so.intra_op_num_threads = threads
    if optimized_model_filepath is not None:
        so.optimized_model_filepath = str(optimized_model_filepath)
    so.log_severity_level = 3  # errors only: ORT's warnings would bury the progress lines
    return so


def open_session(model: Path, providers: Sequence[Any], options: ort.SessionOptions
                 ) -> ort.InferenceSession:
    """Create a session and prove the first provider asked for is the one running it."""
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    session = ort.InferenceSession(str(model), sess_options=options, providers=list(providers))
    active = session.get_providers()
    if not active or active[0] != wanted:
        raise ProviderMismatch(
            f"requested {wanted} but onnxruntime runs {active}: it fell back silently, "
            "so no number is recorded under this label")
    return session


def served_from(session: ort.InferenceSession, model: Path, providers: Sequence[Any],
                info: dict) -> Served:
    input_name = session.get_inputs()[0].name
    batch = session.get_inputs()[0].shape[0]
    run = session.run

    def infer(x: np.ndarray) -> np.ndarray:
        return run(None, {input_name: x})[0]

    info = {**info, "provider_options": {p[0]: p[1] for p in providers if not isinstance(p, str)},
            # 0 is ORT's "default": one thread per physical core.
            "intra_op_threads": session.get_session_options().intra_op_num_threads or "default"}
    return Served(
        infer=infer,
        model_path=model,
        providers_requested=[p if isinstance(p, str) else p[0] for p in providers],
        providers_active=session.get_providers(),
        max_batch=batch if isinstance(batch, int) and batch > 0 else None,
        info=info,
    )


class OnnxCpu(Variant):
    id = "onnx-cpu"
    description = "ONNX Runtime, CPU execution provider, graph as exported (ORT_DISABLE_ALL)"
    level = "disable_all"

    def load(self, ctx: Context) -> Served:
        so = session_options(self.level, ctx.threads)
        session = open_session(ctx.model_onnx, [CPU], so)
        return served_from(session, ctx.model_onnx, [CPU], {"graph_optimization": self.level})


class OnnxOptimized(Variant):
    id = "onnx-optimized"
    description = "ONNX Runtime CPU, ORT_ENABLE_ALL graph optimisation saved offline and served"
    level = "all"

    def optimized_path(self, ctx: Context) -> Path:
        return ctx.workdir / f"{ctx.model_onnx.stem}.ort-optimized.onnx"

    def prepare(self, ctx: Context) -> None:
        dest = self.optimized_path(ctx)
        so = session_options(self.level, ctx.threads, optimized_model_filepath=dest)
        open_session(ctx.model_onnx, [CPU], so)  # writes ``dest`` as it initialises
        if not dest.is_file():
            raise RuntimeError(f"onnxruntime did not write the optimised model to {dest}")

    def load(self, ctx: Context) -> Served:
        model = self.optimized_path(ctx)
        session = open_session(model, [CPU], session_options("disable_all", ctx.threads))
        return served_from(session, model, [CPU], {
            "graph_optimization": self.level,
            "served_with": "disable_all (the saved graph is already optimised)",
            "note": "ENABLE_ALL layout transforms are specific to the CPU that made the file",
        })


class OnnxCuda(Variant):
    id = "onnx-cuda"
    description = "ONNX Runtime, CUDA execution provider"
    provider = CUDA

    def providers(self, ctx: Context) -> list:
        return [(CUDA, {"device_id": 0}), CPU]

    def load(self, ctx: Context) -> Served:
        require_provider(self.provider)
        providers = self.providers(ctx)
        session = open_session(ctx.model_onnx, providers, session_options("all", ctx.threads))
        return served_from(session, ctx.model_onnx, providers, {"graph_optimization": "all"})


class OnnxTensorrt(OnnxCuda):
    id = "onnx-tensorrt"
    description = "ONNX Runtime, TensorRT execution provider (CUDA, then CPU, for the rest)"
    provider = TENSORRT

    def providers(self, ctx: Context) -> list:
        cache = ctx.workdir / "tensorrt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        name = _input_name(ctx.model_onnx)
        shape = "x".join(map(str, (1, 3, 224, 224)))
        batch_shape = "x".join(map(str, (ctx.profile.batch_size, 3, 224, 224)))
        trt = {
            "device_id": 0,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
            # One engine for every batch size the benchmark sends, instead of a rebuild per shape.
            "trt_profile_min_shapes": f"{name}:{shape}",
            "trt_profile_opt_shapes": f"{name}:{shape}",
            "trt_profile_max_shapes": f"{name}:{batch_shape}",
        }
        return [(TENSORRT, trt), (CUDA, {"device_id": 0}), CPU]


def _input_name(model: Path) -> str:
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)
