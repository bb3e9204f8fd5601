"""The helper scripts (servebench_engine/helpers/) run under other interpreters, which have no
engine: none may import it, and each starts from its own folder alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from servebench_engine import helpers

# What the TFLite scripts share: imported by them, never run by the engine.
SHARED = {helpers.SCRIPT_IO}
SCRIPTS = sorted(p for p in helpers.HERE.glob("*.py") if p.name != "__init__.py" and p not in SHARED)


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
    return found


def test_the_folder_holds_the_scripts_the_engine_names():
    assert [p.name for p in SCRIPTS] == ["convert_tflite.py", "quantize_inc.py", "quantize_tflite.py"]
    assert {helpers.QUANTIZE_INC, helpers.CONVERT_TFLITE, helpers.QUANTIZE_TFLITE} == set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS + sorted(SHARED), ids=lambda p: p.name)
def test_a_helper_imports_nothing_of_the_engine(script):
    engine = [m for m in _imports(script) if m.startswith((".", "servebench"))]
    assert not engine, f"{script.name} imports {engine}: it runs where the engine is not"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_helper_starts_without_the_engine_on_its_path(script, tmp_path):
    # -I: no PYTHONPATH, no user site, only the script's own folder: as helper_process starts it.
    proc = subprocess.run([sys.executable, "-I", str(script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
