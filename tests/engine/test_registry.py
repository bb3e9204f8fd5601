"""The variant registry: ids, groups, lazy imports and what a missing runtime becomes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from servebench_engine import variants
from servebench_engine.variants import (CPU_VARIANTS, GPU_VARIANTS, REGISTRY, load_class,
                                        resolve_selection)
from servebench_engine.variants.base import Variant, VariantSkipped

ISSUE_IDS = ["torch-eager", "torch-compile", "torch-compile-openvino", "onnx-cpu", "onnx-unoptimized", "onnx-optimized", "onnx-int8-dynamic",
             "onnx-int8-static-aggressive", "onnx-int8-static-conservative", "openvino", "tflite",
             "tflite-int8", "onnx-cuda", "onnx-tensorrt"]


def test_every_issue_variant_is_registered_in_order():
    assert list(REGISTRY) == ISSUE_IDS
    assert set(CPU_VARIANTS) | set(GPU_VARIANTS) == set(ISSUE_IDS)
    assert "onnx-cuda" not in CPU_VARIANTS


def test_selection():
    assert resolve_selection("all") == ISSUE_IDS
    assert resolve_selection("cpu") == list(CPU_VARIANTS)
    assert resolve_selection(" onnx-cpu, onnx-optimized,onnx-cpu ") == \
        ["onnx-cpu", "onnx-optimized"]
    assert resolve_selection("gpu,onnx-cpu") == ["onnx-cuda", "onnx-tensorrt", "onnx-cpu"]
    with pytest.raises(ValueError, match="unknown variant id.*onnx-gpu.*known: torch-eager"):
        resolve_selection("onnx-cpu,onnx-gpu")
    with pytest.raises(ValueError, match="no variants"):
        resolve_selection(" , ")


def test_registry_imports_are_lazy():
    # Importing the registry must not pull in any runtime a node may lack.
    code = ("import sys, servebench_engine.variants, servebench_engine.cli; "
            "print(sorted(m for m in ('torch', 'openvino', 'ai_edge_litert') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_onnx_classes_load():
    for vid in ("onnx-cpu", "onnx-unoptimized", "onnx-optimized", "onnx-cuda", "onnx-tensorrt"):
        cls = load_class(vid)
        assert issubclass(cls, Variant) and cls.id == vid


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("sb_needs_missing_runtime", "sb_broken_variant"):
        sys.modules.pop(name, None)


def test_missing_third_party_runtime_makes_the_variant_skipped(module_dir, monkeypatch):
    (module_dir / "sb_needs_missing_runtime.py").write_text(
        "import not_a_real_runtime_xyz\n")
    monkeypatch.setitem(variants.REGISTRY, "needs-runtime", "sb_needs_missing_runtime:V")
    with pytest.raises(VariantSkipped, match="not_a_real_runtime_xyz not installed"):
        load_class("needs-runtime")


def test_a_missing_module_of_ours_is_an_error_not_a_skip(monkeypatch):
    monkeypatch.setitem(variants.REGISTRY, "ghost", "servebench_engine.variants.no_such_module:V")
    with pytest.raises(ModuleNotFoundError):
        load_class("ghost")
