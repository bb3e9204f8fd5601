"""PyTorch variants: eager and torch.compile (Inductor) on the CPU.

``prepare`` saves the module's weights (its state_dict) and ``load`` builds the architecture and
reads those weights back as data (``weights_only=True``), as a server that follows PyTorch's
advice does: the served model comes from disk like a fresh server's, and the model's size on
disk is that file's size. A model that came as a ``torch.export`` program (a node's prepared
.pt2, model.ExportedProgram) is served from a copy of that archive instead: it needs torch only.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reuse
from .base import Served, Variant, VariantSkipped

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
        big = int(getattr(ctx.profile, "batch_size", COMPILED_BATCH))
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
        # Filled in as each shape compiles (on its first call). A nested dict on purpose: the
        # engine's copy of ``info`` after the cold start still sees the later batch-32 compile.
        compile_s: dict[str, float] = {}
        info = {
            **self._info(torch),
            "backend": "inductor",
            "mode": "default",
            "dynamic": False,
            "compiled_batch_sizes": sorted({1, big}),
            "inductor_cache_dir": str(cache_dir) if cache_dir else None,
            "inductor_cache_had_entries": cache_used,
            "first_call_s": compile_s,
        }

        def run(batch: np.ndarray) -> np.ndarray:
            key = str(len(batch))
            if key in compile_s:
                with torch.inference_mode():
                    return compiled(torch.from_numpy(batch)).numpy()
            ctx.log(f"torch.compile: compiling for batch {key} (Inductor, tens of seconds "
                    "on a few cores unless its cache has it)...")
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    out = compiled(torch.from_numpy(batch)).numpy()
            except Exception as exc:
                # Inductor's errors run to pages; the record wants one line that says what.
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                raise RuntimeError(
                    f"torch.compile (inductor) failed for batch {key}: {type(exc).__name__}: {first}"
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

        return Served(infer=infer, model_path=self._saved, info=info)


def _inductor_cache_dir() -> Path | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:  # a torch without this helper: the cache state is simply not reported
        return None
    return Path(cache_dir())
