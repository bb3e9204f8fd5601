"""PyTorch variants: eager, and torch.compile on the CPU with Inductor or OpenVINO's backend.

``prepare`` saves the module's weights (its state_dict) and ``load`` builds the architecture and
reads those weights back as data (``weights_only=True``), as a server that follows PyTorch's
advice does: the served model comes from disk like a fresh server's, and the model's size on
disk is that file's size. A model that came as a ``torch.export`` program (a node's prepared
.pt2, model.ExportedProgram) is served from a copy of that archive instead: it needs torch only.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import reuse
from .base import Served, Variant, VariantSkipped
from .openvino_variant import inference_precision, runtime_config

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

# torch.compile with static shapes compiles once per input shape (tens of seconds each on two
# cores), so the compiled variant only ever sees batches of 1 and of the engine's batch size
# (the profile's, 32 by default); other sizes run in chunks of that, the last one zero-padded.
COMPILED_BATCH = 32
# Inductor's CPU code generation compiles C++; g++ is what it looks for by default.
CXX_COMPILERS = ("g++", "c++", "clang++")


def _import_torch(ctx: "Context"):
    if ctx.torch_model is None and ctx.model_is_quantized:
        raise VariantSkipped("the given model is an INT8 ONNX: PyTorch cannot serve it, and no "
                             "PyTorch form of it was given")
    if ctx.torch_model is None:
        raise VariantSkipped("needs a PyTorch model; only an .onnx was given")
    try:
        import torch
    except ImportError as exc:
        raise VariantSkipped(f"PyTorch is not installed here ({exc})") from exc
    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    return torch


class _TorchVariant(Variant):
    def __init__(self) -> None:
        self._saved: Path | None = None

    def prepare(self, ctx: "Context") -> None:
        torch = _import_torch(ctx)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        program = getattr(ctx.torch_model, "path", None)
        self._saved = ctx.workdir / f"{self.id}{'.pt2' if program is not None else '.pth'}"
        # The saved module follows from the model (its ONNX form names it) and the torch.
        key = reuse.source_key(self.id, program or ctx.model_onnx, torch=torch.__version__,
                               saved="program" if program is not None else "state_dict")
        self.reused = reuse.reusable(self._saved, key) is not None
        if self.reused:
            return
        reuse.forget(self._saved)
        if program is not None:
            shutil.copyfile(program, self._saved)
        else:
            torch.save(ctx.torch_model().state_dict(), self._saved)
        reuse.remember(self._saved, key, {})

    def _load_module(self, ctx: "Context"):
        torch = _import_torch(ctx)
        if self._saved is None:
            raise RuntimeError(f"{self.id}: load() before prepare() saved the model")
        if self._saved.suffix == ".pt2":
            return torch, torch.export.load(str(self._saved)).module()
        module = ctx.torch_model()
        module.load_state_dict(torch.load(self._saved, weights_only=True, map_location="cpu"))
        return torch, module.eval()

    def _info(self, torch) -> dict[str, Any]:
        return {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "served_as": "torch.export program" if self._saved and self._saved.suffix == ".pt2"
                else "state_dict"}


class TorchEager(_TorchVariant):
    id = "torch-eager"
    description = "PyTorch eager mode on the CPU (inference_mode)"

    def load(self, ctx: "Context") -> Served:
        torch, module = self._load_module(ctx)

        def infer(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(images)).numpy()

        return Served(infer=infer, model_path=self._saved, info=self._info(torch))


class TorchCompile(_TorchVariant):
    id = "torch-compile"
    description = "torch.compile (Inductor, static shapes) on the CPU; compile time is in the cold start"

    def load(self, ctx: "Context") -> Served:
        torch, module = self._load_module(ctx)
        cache_dir = _inductor_cache_dir()
        # Inductor reuses what it compiled in earlier runs on this machine (of any model): say
        # whether its cache had anything, since a warm one makes the cold start far shorter
        # than on a fresh node (here: ~5 s instead of ~30 s for batch 1).
        cache_used = cache_dir is not None and cache_dir.is_dir() and any(cache_dir.iterdir())
        if not any(shutil.which(cxx) for cxx in CXX_COMPILERS):
            raise VariantSkipped(
                "torch.compile's Inductor backend needs a C++ compiler on the CPU; "
                f"none of {', '.join(CXX_COMPILERS)} is on PATH"
            )
        compiled = torch.compile(module, backend="inductor", mode="default",
                                 dynamic=False, fullgraph=True)
        infer, info = _static_shapes(torch, compiled, ctx, "inductor",
                                     "tens of seconds on a few cores unless its cache has it")
        info.update({
            **self._info(torch),
            "mode": "default",
            "inductor_cache_dir": str(cache_dir) if cache_dir else None,
            "inductor_cache_had_entries": cache_used,
        })
        return Served(infer=infer, model_path=self._saved, info=info)


class TorchCompileOpenVino(_TorchVariant):
    id = "torch-compile-openvino"
    description = ("torch.compile with OpenVINO's backend (openvino.torch; static shapes, "
                   "aot_autograd, frozen weights) on the CPU; compile time is in the cold start")
    # The backend expects dynamo to leave a module's weights as attributes: it turns dynamo's
    # inline_inbuilt_nn_modules off on import, but since torch 2.5 that switch does nothing (2.14
    # says so), and dynamo lifts every weight to a graph input. Then, measured with torch 2.14.1
    # and 2.13.0+cpu, openvino 2026.4.1, MobileNetV2 on 2 cores:
    # - the backend's default path fails at the first call, in dynamo's guards ("AssertionError:
    #   sources must not be empty for symbol s24"); with aot_autograd it compiles;
    # - but the OpenVINO model then takes its 262 weights as inputs on every call (9.1 ms p50:
    #   nothing about them is fixed when it compiles); Inductor's freezing switch, on while
    #   each shape compiles, makes dynamo keep them as attributes, which the backend's
    #   aot_autograd path turns into constants (one input: 2.4 ms, as the openvino variant's IR).
    # model_caching off (the backend's default): it would write IR files under ./cache and a
    # second process would skip the conversion, unlike a fresh server's cold start.
    options_why = ("aot_autograd: without it the first call fails in dynamo's guards (torch "
                   "2.14.1, openvino 2026.4.1: 'sources must not be empty for symbol'); "
                   "freezing (torch._inductor.config.freezing while each shape compiles): the "
                   "weights become OpenVINO constants, not per-call inputs (9.1 -> 2.4 ms p50 "
                   "here); config: the openvino variant's")

    def prepare(self, ctx: "Context") -> None:
        _import_torch(ctx)  # its reasons first: no PyTorch model, or no torch
        _import_openvino_torch()
        super().prepare(ctx)

    def load(self, ctx: "Context") -> Served:
        torch, module = self._load_module(ctx)
        openvino, ov_execute = _import_openvino_torch()
        config = runtime_config(ctx.threads)
        options = {"aot_autograd": True, "model_caching": False, "config": config}
        compiled = torch.compile(module, backend="openvino", dynamic=False, fullgraph=True,
                                 options=options)
        partitions: dict[str, dict[str, int]] = {}
        precisions: list[str] = []  # a list filled in place, as first_call_s (see there)

        def check(batch: str, first_call: Callable[[], np.ndarray]) -> np.ndarray:
            # The backend falls back quietly: to Inductor when converting fails, to eager
            # PyTorch when a partition fails to run. Either is an error here, never a number
            # under an OpenVINO label; ops OpenVINO does not take stay in PyTorch, and the
            # record counts them.
            with _backend_log() as said, torch._inductor.config.patch(freezing=True):
                before = set(ov_execute.partitioned_modules), set(ov_execute.compiled_cache)
                out = first_call()
            graphs = [g for k, g in ov_execute.partitioned_modules.items() if k not in before[0]]
            models = [m for k, m in ov_execute.compiled_cache.items() if k not in before[1]]
            precisions.extend({inference_precision(m) for m in models} - set(precisions))
            # 1 with the weights frozen (the image), 263 for MobileNetV2 were they inputs.
            counts = {**_partition_counts(graphs),
                      "openvino_inputs": sum(len(m.inputs) for m in models)}
            if not graphs or counts["openvino_subgraphs"] == 0 or counts["fell_back"]:
                raise RuntimeError("torch.compile's openvino backend did not run this batch on "
                                   f"OpenVINO ({counts}): {'; '.join(said) or 'no reason logged'}")
            partitions[batch] = counts
            return out

        # copy_out: the backend's outputs are views of its infer request's output buffer (it
        # runs with share_outputs=True), which the next call overwrites: kept logits would all
        # become the last call's.
        infer, info = _static_shapes(torch, compiled, ctx, "openvino",
                                     "seconds: the graph converted to OpenVINO and compiled",
                                     check, copy_out=True)
        info.update({
            **self._info(torch),
            "openvino": openvino.__version__,
            "options": {**options, "config": {k: str(v) for k, v in config.items()}},
            "freezing": True,
            "options_why": self.options_why,
            "openvino_partitions": partitions,
            "inference_precision": precisions,
        })
        return Served(infer=infer, model_path=self._saved, info=info)


def _static_shapes(torch, compiled, ctx: "Context", backend: str, compile_note: str,
                   check: Callable[[str, Callable[[], np.ndarray]], np.ndarray] | None = None,
                   copy_out: bool = False,
                   ) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """Serve a module compiled with static shapes: batches of 1 and of the profile's batch size
    compile on their first call (timed into ``first_call_s``), other sizes run in chunks of the
    latter, the last one zero-padded. ``check`` wraps each first call (a backend's guard);
    ``copy_out``: return a copy of each output (a backend that reuses its output buffer)."""
    big = int(getattr(ctx.profile, "batch_size", COMPILED_BATCH))
    # Filled in as each shape compiles (on its first call). A nested dict on purpose: the
    # engine's copy of ``info`` after the cold start still sees the later batch-32 compile.
    compile_s: dict[str, float] = {}
    info = {"backend": backend, "dynamic": False, "compiled_batch_sizes": sorted({1, big}),
            "first_call_s": compile_s}

    def call(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = compiled(torch.from_numpy(batch)).numpy()
        return out.copy() if copy_out else out

    def run(batch: np.ndarray) -> np.ndarray:
        key = str(len(batch))
        if key in compile_s:
            return call(batch)
        ctx.log(f"torch.compile: compiling for batch {key} ({backend}, {compile_note})...")
        started = time.perf_counter()
        try:
            out = check(key, lambda: call(batch)) if check else call(batch)
        except Exception as exc:
            # The backends' errors run to pages; the record wants one line that says what.
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise RuntimeError(
                f"torch.compile ({backend}) failed for batch {key}: {type(exc).__name__}: {first}"
            ) from exc
        compile_s[key] = round(time.perf_counter() - started, 3)
        return out

    def infer(images: np.ndarray) -> np.ndarray:
        if len(images) in (1, big):
            return run(images)
        outputs = []
        for start in range(0, len(images), big):
            chunk = images[start : start + big]
            padded = np.zeros((big, *images.shape[1:]), dtype=images.dtype)
            padded[: len(chunk)] = chunk
            outputs.append(run(padded)[: len(chunk)])
        return np.concatenate(outputs)

    return infer, info


def _import_openvino_torch():
    """openvino and the module that runs its torch.compile backend's partitions; importing
    ``openvino.torch`` registers the "openvino" backend with torch.compile."""
    try:
        import openvino
        import openvino.torch  # noqa: F401 - registers the backend
        from openvino.frontend.pytorch.torchdynamo import execute
    except ImportError as exc:
        raise VariantSkipped(f"OpenVINO's torch.compile backend needs the openvino package, "
                             f"not installed here ({exc})") from exc
    return openvino, execute


# Where the backend says, at debug level only, that it gave up on OpenVINO.
_BACKEND_LOGGERS = ("openvino.frontend.pytorch.torchdynamo.backend",
                    "openvino.frontend.pytorch.torchdynamo.execute")


@contextlib.contextmanager
def _backend_log() -> Iterator[list[str]]:
    """The backend's messages about failing or falling back, while the block runs."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "fail" in message.lower() or "fall" in message.lower():
                said.append(message.strip().splitlines()[0][:300])

    handler = Keep(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in _BACKEND_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield said
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)


def _partition_counts(graphs: list) -> dict[str, int]:
    """In the graphs the backend partitioned: the subgraphs OpenVINO runs ("fused_*" modules),
    those of them that fell back to PyTorch, and the ops left to PyTorch between them."""
    counts = {"openvino_subgraphs": 0, "fell_back": 0, "ops_left_to_torch": 0}
    for graph in graphs:
        for node in graph.graph.nodes:
            if node.op == "call_module" and "fused_" in node.name:
                counts["openvino_subgraphs"] += 1
                counts["fell_back"] += bool(getattr(graph.get_submodule(node.target),
                                                    "perm_fallback", False))
            elif node.op in ("call_function", "call_method", "call_module"):
                counts["ops_left_to_torch"] += 1
    return counts


def _inductor_cache_dir() -> Path | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:  # a torch without this helper: the cache state is simply not reported
        return None
    return Path(cache_dir())
