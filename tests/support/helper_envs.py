"""The helper environments the Makefile builds beside .venv (.venv-inc, .venv-litert), for tests."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What the TFLite converter environment (.venv-litert) must have: onnx2torch is imported by the
# converter behind a torchvision stub, so it is only found here; ai-edge-quantizer makes the
# INT8 .tflite.
LITERT_PROBE = ("import importlib.util, litert_torch, ai_edge_quantizer; "
                "assert importlib.util.find_spec('onnx2torch'), 'no onnx2torch'")


@functools.cache
def _unusable(venv: str, probe: str) -> str | None:
    python = REPO / venv / "bin" / "python"
    if not python.exists():
        return f"no {venv} at {python.parent.parent} (make {venv}/.installed)"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return f"{python} fails its probe: {done.stderr.strip()[-200:]}"
    return None


def helper_python(venv: str, probe: str) -> str:
    """The Python of ``venv`` (relative to the repository) once ``probe`` runs in it; else the
    test is skipped with the reason."""
    reason = _unusable(venv, probe)
    if reason:
        pytest.skip(reason)
    return str(REPO / venv / "bin" / "python")
