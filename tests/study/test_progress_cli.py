"""`python -m servebench.progress bench.yml ...`, what `make bench` runs on a terminal: a real
smoke run on localhost under a pseudo-terminal shows the live view, not Ansible's task log, and
Ansible's log lands in the run folder."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .notebook import leftover_processes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def run_on_a_terminal(args: list[str], env: dict, timeout_s: float = 900) -> tuple[int, str]:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "servebench.progress", *args], cwd=REPO,
                            stdin=secondary, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the terminal closed: the run is over
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
    os.close(primary)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_the_live_view_and_the_run_folder_the_log(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    results = tmp_path / "results"
    rc, screen = run_on_a_terminal(
        ["bench.yml", "-e", "profile=smoke", "-e", "variants=onnx-cpu",
         "-e", f"results_dir={results}"], env)

    [run_dir] = [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()]
    record = json.loads((run_dir / "localhost" / "onnx-cpu.json").read_text())
    assert rc == 0, screen[-2000:]
    # The live block: redrawn in place, with the record's count and p50.
    assert "\x1b[2K" in screen and "\x1b[2F" in screen
    assert f"localhost: benchmark, 1/1 variants, last onnx-cpu p50 {record['latency_ms']['p50']:.3f} ms" in screen
    # Not Ansible's task log: that is in the run folder.
    assert "TASK [" not in screen and "PLAY RECAP" not in screen
    log = run_dir / "ansible.log"
    assert f"full log: {log}" in screen
    assert "Benchmark | wait for each variant's record (local)] ***" in log.read_text()
    assert not leftover_processes(str(tmp_path))
