"""The playbooks parse, and ansible-lint's production profile passes, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

BIN = Path(sys.executable).parent


def _run(argv: list[str], timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), NO_COLOR="1",
               ANSIBLE_NOCOLOR="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("playbook", ["bench.yml", "playbooks/teardown.yml"])
def test_syntax_check(playbook):
    done = _run([str(BIN / "ansible-playbook"), "--syntax-check", playbook], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_ansible_lint_production_profile_offline():
    # --offline: no Galaxy installs, no schema downloads (this machine has no internet).
    done = _run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor",
                 "bench.yml", "playbooks", "roles"], timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


def test_the_benchmark_tag_alone_still_prepares_the_nodes_models():
    done = _run([str(BIN / "ansible-playbook"), "--list-tasks", "--tags", "benchmark", "bench.yml"],
                timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    plays = {block.split(":", 1)[1].split("\t")[0].strip(): block for block in done.stdout.split("play #")[1:]}
    prepare = plays["Prepare | export and convert the models once for the nodes"]
    assert "Prepare | export each model to ONNX" in prepare
    assert "Prepare | convert each float model to a float32 .tflite" in prepare
    assert "Prepare | quantise each float .tflite to a full-integer INT8 .tflite" in prepare
    assert "Prepare | list what was made here (prepared/artifacts.json)" in prepare
    assert "Benchmark | ship, run, show progress" in plays["Benchmark | run the suite on every target"]
    assert "tasks:\n\n" in plays["Setup | configure the benchmark targets"] + "\n"  # none listed


def _role_default(role: str, expression: str) -> str:
    """Evaluate a Jinja2 expression over a role's defaults, as a play would see them."""
    done = _run([str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
                 "-e", f"@roles/{role}/defaults/main.yml", "-m", "ansible.builtin.debug",
                 "-a", f"msg=<<{{{{ {expression} }}}}>>"], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("<<", 1)[1].split(">>", 1)[0]


def test_an_a100_node_prices_the_cpu_option_too():
    # compute_liqid / compute_gigaio carry AMD EPYC CPUs beside the A100: the CPU runs are
    # judged as cpu_server, the CUDA / TensorRT run as the node's own kind.
    runs = _role_default("benchmark", "benchmark_runs_by_kind.gpu_server "
                         "| map(attribute='runtime') | zip(benchmark_runs_by_kind.gpu_server "
                         "| map(attribute='judged_as', default='-')) | map('join', '=') | join(',')")
    assert runs == "cpu=cpu_server,openvino=cpu_server,gpu=-"
    cpu_variants = _role_default("benchmark", "benchmark_runs_by_kind.gpu_server[0].variants "
                                 "| join(',')")
    assert cpu_variants == _role_default("benchmark", "benchmark_cpu_server_runs[0].variants "
                                         "| join(',')")
    flavours = _role_default("onnx_runtime", "onnx_runtime_flavours_by_kind.gpu_server | join(',')")
    assert flavours == "cpu,openvino,gpu"
