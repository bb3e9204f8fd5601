"""`make bench` picks the progress view only on a terminal outside CI: run with stub tools in BIN
(they print how they were called) and the venv targets taken as made (make -o)."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MADE = [".venv/.bench-installed", ".venv-inc/.installed", ".venv-litert/.installed"]


@pytest.fixture
def stubs(tmp_path) -> Path:
    for name in ("python", "ansible-playbook"):
        tool = tmp_path / name
        tool.write_text(f'#!/bin/sh\necho "STUB {name} $*"\n')
        tool.chmod(0o755)
    return tmp_path


def make_bench(stubs: Path, env: dict, terminal: bool) -> str:
    cmd = ["make", "--no-print-directory", "-C", str(REPO), f"BIN={stubs}", "PROFILE=smoke",
           "ARGS=-e variants=onnx-cpu", *(f"-o{target}" for target in MADE), "bench"]
    if not terminal:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                              check=True).stdout
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    out = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 0, out
    return out.decode()


def test_the_progress_view_on_a_terminal_only(stubs):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    on_tty = make_bench(stubs, env, terminal=True)
    assert "STUB python -m servebench.progress bench.yml -e profile=smoke -e variants=onnx-cpu" in on_tty
    piped = make_bench(stubs, env, terminal=False)
    under_ci = make_bench(stubs, {**env, "CI": "true"}, terminal=True)
    plain_tty = make_bench(stubs, env | {"MAKEFLAGS": "PROGRESS=0"}, terminal=True)
    for out in (piped, under_ci, plain_tty):
        assert "servebench.progress" not in out and "bench.yml -e profile=smoke" in out, out
