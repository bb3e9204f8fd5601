"""ONNX Runtime variants: the CPU baseline, offline graph optimisation, CUDA and TensorRT.

All of them open sessions through :func:`open_session`, whose guard is the project's rule:
the execution provider asked for must be the one ORT put first (``session.get_providers()[0]``).
ORT itself silently falls back to CPU when a provider cannot be created (a CPU-only build asked
for CUDA, a missing CUDA library); that would report a CPU number under a GPU label, so it is a
:class:`ProviderMismatch`, recorded as an error.

Optimisation levels, as the tutorials (seed 002) define the variants:

* ``onnx-cpu``: ``ort.InferenceSession(model, providers=['CPUExecutionProvider'])`` with ONNX
  Runtime's default session options, which optimise the graph at load time (``ORT_ENABLE_ALL``
  in every onnxruntime this project pins): what any user gets by default. The record names the
  level the session ran at, read back from the session.
* ``onnx-unoptimized``: ``ORT_DISABLE_ALL``, the exported graph exactly as it is: what graph
  optimisation buys is the gap between this and the others.
* ``onnx-optimized``: ``ORT_ENABLE_EXTENDED`` run once in ``prepare`` with
  ``optimized_model_filepath``, which saves the optimised graph; ``load`` then serves that saved
  file with the default session options, as the tutorial does. Its size and cold start are the
  saved file's. (EXTENDED, not ALL: ALL adds the NCHWc layout transforms, which ORT warns are
  specific to the CPU that made them, so a saved ALL graph is not portable.)
* ``onnx-cuda`` / ``onnx-tensorrt``: the providers' own defaults (ORT applies ENABLE_ALL) plus
  ``session.disable_cpu_ep_fallback``: the guard above sees only the first provider, and ORT
  places each node CUDA or TensorRT cannot run on its CPU provider unseen, which would put a
  CPU-dominated number under a GPU label. With the switch such a model is a
  :class:`ProviderMismatch` at load. TensorRT lists CUDA after it for the nodes it cannot take
  (the chain is in the record), and keeps its engine cache in the artifacts folder so a second
  run skips the engine build.

ONNX Runtime's log is set to errors only for the whole process (its warnings would bury the
progress lines), so no session option differs from the defaults for that.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from ..context import Context
from . import reuse
from .base import ProviderMismatch, Served, Variant, VariantSkipped

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
# ONNX Runtime's session config key that makes a node no listed provider takes an error at
# session creation, instead of a silent placement on its default CPU provider.
NO_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
CPU_FALLBACK_REFUSED = "fallback to CPU EP has been explicitly disabled"
LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
ort.set_default_logger_severity(3)


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


def session_options(level: str | None, threads: int | None,
                    optimized_model_filepath: Path | None = None) -> ort.SessionOptions:
    """ORT's default options, changed only where asked: ``level`` None keeps ORT's default
    optimisation level, ``threads`` None its default thread count."""
    so = ort.SessionOptions()
    if level is not None:
        so.graph_optimization_level = LEVELS[level]
    if threads:
        so.intra_op_num_threads = threads
    if optimized_model_filepath is not None:
        so.optimized_model_filepath = str(optimized_model_filepath)
    return so


def options_dict(so: ort.SessionOptions) -> dict[str, Any]:
    """Every plain setting of ``so`` (what a record shows, and what tests compare)."""
    out = {}
    for name in dir(so):
        value = getattr(so, name) if not name.startswith("_") else None
        if name.startswith("_") or callable(value):
            continue
        out[name] = value if isinstance(value, (bool, int, str)) else str(value).split(".")[-1]
    return out


def level_name(session: ort.InferenceSession) -> str:
    """The graph optimisation level a session ran at, as ORT names it (e.g. ORT_ENABLE_ALL)."""
    return session.get_session_options().graph_optimization_level.name


def open_session(model: Path, providers: Sequence[Any], options: ort.SessionOptions
                 ) -> ort.InferenceSession:
    """Create a session and prove the first provider asked for is the one running it."""
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    try:
        session = ort.InferenceSession(str(model), sess_options=options, providers=list(providers))
    except Exception as exc:  # ORT's own pybind error types; only its refusal is ours to name
        if CPU_FALLBACK_REFUSED not in str(exc):
            raise
        raise ProviderMismatch(
            f"requested {wanted} but onnxruntime would run some of the model's nodes on "
            f"{CPU} ({NO_CPU_FALLBACK} refused the session), so no number is recorded under "
            "this label") from None
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
    description = ("ONNX Runtime, CPU execution provider, default session options (graph "
                   "optimised at load time): the baseline every user gets")
    level: str | None = None  # ORT's default

    def load(self, ctx: Context) -> Served:
        so = session_options(self.level, ctx.threads)
        session = open_session(ctx.model_onnx, [CPU], so)
        return served_from(session, ctx.model_onnx, [CPU], {
            "graph_optimization_level": level_name(session),
            "session_options": options_dict(session.get_session_options()),
        })


class OnnxUnoptimized(OnnxCpu):
    id = "onnx-unoptimized"
    description = "ONNX Runtime, CPU execution provider, graph as exported (ORT_DISABLE_ALL)"
    level = "disable_all"


class OnnxOptimized(Variant):
    id = "onnx-optimized"
    description = ("ONNX Runtime CPU, ORT_ENABLE_EXTENDED graph optimisation saved offline "
                   "(optimized_model_filepath), the saved model served")
    level = "extended"

    def __init__(self) -> None:
        self._info: dict[str, Any] = {}

    def optimized_path(self, ctx: Context) -> Path:
        return ctx.workdir / f"{ctx.model_onnx.stem}.ort-optimized.onnx"

    def prepare(self, ctx: Context) -> None:
        dest = self.optimized_path(ctx)
        key = reuse.source_key(self.id, ctx.model_onnx, level=self.level,
                               onnxruntime=ort.__version__)
        info = reuse.reusable(dest, key)
        self.reused = info is not None
        if info is None:
            reuse.forget(dest)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            so = session_options(self.level, ctx.threads, optimized_model_filepath=dest)
            session = open_session(ctx.model_onnx, [CPU], so)  # writes ``dest`` as it loads
            if not dest.is_file():
                raise RuntimeError(f"onnxruntime did not write the optimised model to {dest}")
            info = reuse.remember(dest, key, {
                "graph_optimization_level": level_name(session),
                "optimized_offline": f"{level_name(session)}, saved with optimized_model_filepath",
            })
        self._info = info

    def load(self, ctx: Context) -> Served:
        if not self._info:
            raise RuntimeError(f"{self.id}: load() before prepare() saved the optimised model")
        model = self.optimized_path(ctx)
        session = open_session(model, [CPU], session_options(None, ctx.threads))
        return served_from(session, model, [CPU], {
            **self._info,
            "served_at_level": f"{level_name(session)} (onnxruntime's default session options)",
        })


def gpu_session_options(threads: int | None) -> ort.SessionOptions:
    """The defaults, plus no silent per-node CPU fallback: the guard in open_session sees only
    the first provider, so without this a CUDA session could run most of a model on the CPU."""
    so = session_options(None, threads)
    so.add_session_config_entry(NO_CPU_FALLBACK, "1")
    return so


class OnnxCuda(Variant):
    id = "onnx-cuda"
    description = "ONNX Runtime, CUDA execution provider, no CPU fallback"
    provider = CUDA
    chain = "CUDA only: a node CUDA cannot run makes the session an error, not a CPU node"

    def providers(self, ctx: Context) -> list:
        # No CPU entry: ORT refuses the CPU provider listed beside the fallback switch.
        return [(CUDA, {"device_id": 0})]

    def load(self, ctx: Context) -> Served:
        require_provider(self.provider)
        providers = self.providers(ctx)
        session = open_session(ctx.model_onnx, providers, gpu_session_options(ctx.threads))
        fallback = session.get_session_options().get_session_config_entry(NO_CPU_FALLBACK)
        return served_from(session, ctx.model_onnx, providers, {
            "graph_optimization_level": level_name(session),
            "provider_chain": self.chain,
            "cpu_ep_fallback": f"disabled ({NO_CPU_FALLBACK}={fallback})",
        })


class OnnxTensorrt(OnnxCuda):
    id = "onnx-tensorrt"
    description = ("ONNX Runtime, TensorRT execution provider, CUDA for the nodes TensorRT "
                   "does not take, no CPU fallback")
    provider = TENSORRT
    chain = ("TensorRT, then CUDA for the nodes TensorRT does not take; a node neither can run "
             "makes the session an error, not a CPU node")

    def providers(self, ctx: Context) -> list:
        cache = ctx.workdir / "tensorrt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        name = _input_name(ctx.model_onnx)
        image = ctx.splits["evaluation"].images.shape[1:]  # the model's input size, as loaded
        shape = "x".join(map(str, (1, *image)))
        batch_shape = "x".join(map(str, (ctx.profile.batch_size, *image)))
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
        return [(TENSORRT, trt), (CUDA, {"device_id": 0})]


def _input_name(model: Path) -> str:
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)
