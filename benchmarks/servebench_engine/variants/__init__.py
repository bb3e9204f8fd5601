"""Registry of variant ids -> ``"module:Class"``, imported only when a variant runs.

Lazy on purpose: a node without torch or openvino can still run every ONNX variant; only the
variants whose runtime is missing are skipped, with the missing module as the reason.
"""

from __future__ import annotations

import importlib

from .base import Variant, VariantSkipped

_PKG = __name__

REGISTRY: dict[str, str] = {
    "torch-eager": f"{_PKG}.torch_variants:TorchEager",
    "torch-compile": f"{_PKG}.torch_variants:TorchCompile",
    "torch-compile-openvino": f"{_PKG}.torch_variants:TorchCompileOpenVino",
    "onnx-cpu": f"{_PKG}.onnx_runtime:OnnxCpu",
    "onnx-unoptimized": f"{_PKG}.onnx_runtime:OnnxUnoptimized",
    "onnx-optimized": f"{_PKG}.onnx_runtime:OnnxOptimized",
    "onnx-int8-dynamic": f"{_PKG}.quantize:Int8Dynamic",
    "onnx-int8-static-aggressive": f"{_PKG}.quantize:Int8StaticAggressive",
    "onnx-int8-static-conservative": f"{_PKG}.quantize:Int8StaticConservative",
    "openvino": f"{_PKG}.openvino_variant:OpenVinoVariant",
    "tflite": f"{_PKG}.tflite_variant:TfliteVariant",
    "tflite-int8": f"{_PKG}.tflite_int8:TfliteInt8Variant",
    "onnx-cuda": f"{_PKG}.onnx_runtime:OnnxCuda",
    "onnx-tensorrt": f"{_PKG}.onnx_runtime:OnnxTensorrt",
}
GPU_VARIANTS = ("onnx-cuda", "onnx-tensorrt")
CPU_VARIANTS = tuple(v for v in REGISTRY if v not in GPU_VARIANTS)
# Selections accepted by --variants besides an explicit list.
GROUPS = {"all": tuple(REGISTRY), "cpu": CPU_VARIANTS, "gpu": GPU_VARIANTS}


def resolve_selection(text: str) -> list[str]:
    """``all``, ``cpu``, ``gpu`` or a comma-separated list of ids (order kept, duplicates dropped).
    Raises ValueError naming the unknown ids."""
    ids: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        for vid in GROUPS.get(part, (part,)):
            if vid not in ids:
                ids.append(vid)
    unknown = [v for v in ids if v not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown variant id(s) {', '.join(unknown)}; known: "
                         f"{', '.join(REGISTRY)} (or all, cpu, gpu)")
    if not ids:
        raise ValueError("no variants selected")
    return ids


def load_class(variant_id: str) -> type[Variant]:
    """Import the variant's class. A third-party runtime that is not installed makes it
    :class:`VariantSkipped`; a broken module of ours is a plain error (a bug to fix)."""
    module_name, _, class_name = REGISTRY[variant_id].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing and missing != _PKG.split(".")[0]:
            raise VariantSkipped(f"{missing} not installed ({e})") from e
        raise
    return getattr(module, class_name)
