"""The roles that cannot run for real here - docker, nvidia_container_toolkit, onnx_runtime
(images and the edge venv), food11_dataset's download - run in check mode with --diff against
sshd test hosts on loopback, through the real setup stage of bench.yml. Their rendered files
(daemon.json, the deb822 apt sources, the Dockerfiles) are read from the run's events and
asserted, and nothing may have been written.

Why check mode: this machine has no Docker engine, no GPU, no sudo, and no internet (apt
repositories, pip, the Food-11 download). In check mode apt, service, user, docker build,
nvidia-ctk, pip and the GPU check do not execute; the apt signing keys are served from a loopback
HTTP server (deb822_repository fetches the key even in check mode).
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from pathlib import Path

import pytest

from .conftest import LOCAL_INVENTORY, bench, food11_archive, node_vars, write_inventory

pytestmark = pytest.mark.slow

# deb822_repository runs on the node with the node's Python (this venv's, on the loopback
# hosts), so the dev extras install python-debian: without it this module fails, not skips.
import debian  # noqa: E402,F401


def _system_python_has_apt() -> bool:
    """ansible.builtin.apt re-executes under a Python with the apt bindings (python3-apt)."""
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import apt"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False

FAKE_KEY = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEgcmVhbCBrZXk=\n-----END PGP PUBLIC KEY BLOCK-----\n"
WRITTEN_NOWHERE = ("/etc/docker/daemon.json", "/etc/apt/sources.list.d/docker.sources",
                   "/etc/apt/sources.list.d/nvidia-container-toolkit.sources",
                   "/etc/apt/keyrings/docker.asc", "/opt/servebench")


@pytest.fixture
def key_server():
    """Serves FAKE_KEY at any path on 127.0.0.1 (loopback only)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(FAKE_KEY)))
            self.end_headers()
            self.wfile.write(FAKE_KEY)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def _after(run, task: str, host: str) -> str:
    """The rendered content a template/copy task would have written (from its --diff)."""
    for data in run.task_results(task, host=host):
        diff = data["res"].get("diff")
        for part in diff if isinstance(diff, list) else [diff]:
            if part and "after" in part:
                return part["after"]
    raise AssertionError(f"no diff for {task!r} on {host}")


def _module_result(run, task: str, host: str) -> dict:
    found = run.task_results(task, host=host)
    assert found, f"{task!r} did not run on {host}"
    return found[0]["res"]


@pytest.mark.skipif(not _system_python_has_apt(),
                    reason="/usr/bin/python3 cannot import apt (python3-apt): ansible.builtin.apt "
                           "cannot run in check mode on this host")
def test_setup_roles_in_check_mode_render_pinned_files(tmp_path, ssh_hosts, ssh_key, key_server):
    already = {p for p in WRITTEN_NOWHERE if Path(p).exists()}
    gpu, cpu, edge = ssh_hosts("127.0.0.2"), ssh_hosts("127.0.0.3"), ssh_hosts("127.0.0.4")
    # Every system path a role reads or writes is one of the test's own: check mode diffs against
    # what is there, so the host's real /etc/docker/daemon.json (already configured as the
    # docker role configures it) would leave no diff to read.
    system = tmp_path / "system"
    own_paths = {
        "docker_daemon_json_path": str(system / "etc" / "docker" / "daemon.json"),
        "docker_dockerd_pidfile": str(system / "run" / "docker.pid"),
        "docker_dockerd_log": str(system / "log" / "dockerd.log"),
        "onnx_runtime_build_dir": str(system / "opt" / "images"),
        "onnx_runtime_arm_venv": str(system / "opt" / "venv"),
        "food11_dataset_dir": str(system / "opt" / "food11"),
    }
    common = {
        "docker_apt_key_url": f"{key_server}/docker/gpg",
        "nvidia_container_toolkit_apt_key_url": f"{key_server}/nvidia/gpgkey",
        **own_paths,
    }
    hosts = {}
    for group, name, sshd in (("gpu_servers", "gpu1", gpu), ("cpu_servers", "cpu1", cpu),
                              ("edge_devices", "edge1", edge)):
        hostvars = node_vars(sshd, ssh_key, tmp_path / name, **common)
        # Each kind builds its own flavours here (node_vars turns them off for the real runs).
        del hostvars["onnx_runtime_flavours"]
        hosts[group] = {name: hostvars}
    inventory = write_inventory(tmp_path / "chi_check.yml", hosts)
    archive = food11_archive(tmp_path / "food11.zip", per_class=1)

    run = bench(tmp_path, [LOCAL_INVENTORY, inventory], tags=["setup"], check=True, diff=True,
                artifact_dir=tmp_path / "runner",
                extravars={"food11_dataset_enabled": True, "food11_dataset_archive": str(archive)})

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    for host in ("gpu1", "cpu1", "edge1"):
        failed = run.task_results("Record | mark the host failed in this stage", host=host)
        assert not failed, f"{host} failed the setup stage in check mode: {failed[0]['res']}"
    assert not run.stats.get("failures") and not run.stats.get("dark")

    # docker: daemon.json from the options dict; Docker's deb822 source with its signed-by key.
    for host in ("gpu1", "cpu1"):
        daemon = json.loads(_after(run, "Docker | write daemon.json", host))
        assert daemon == {"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "3"}}
        repo = _module_result(run, "Docker | add Docker's apt repository", host)
        assert repo["dest"] == "/etc/apt/sources.list.d/docker.sources"
        assert repo["key_filename"] == "/etc/apt/keyrings/docker.asc"
        # This test host is Debian bookworm on amd64: the vars/Debian.yml branch.
        for line in ("Types: deb", "URIs: https://download.docker.com/linux/debian",
                     "Suites: bookworm", "Components: stable", "Architectures: amd64",
                     "Signed-By: /etc/apt/keyrings/docker.asc"):
            assert line in repo["repo"].splitlines(), (line, repo["repo"])
    assert not run.task_results("Docker | write daemon.json", host="edge1")
    # The GPU server got Docker once, as the toolkit's dependency (meta/main.yml).
    assert len(run.task_results("Docker | write daemon.json", host="gpu1")) == 1

    # nvidia_container_toolkit: NVIDIA's flat repository and the tutorial's cgroup driver.
    nv = _module_result(run, "NVIDIA toolkit | add NVIDIA's apt repository", "gpu1")
    assert "URIs: https://nvidia.github.io/libnvidia-container/stable/deb/amd64" in nv["repo"]
    assert "Suites: /" in nv["repo"].splitlines() and "Components" not in nv["repo"]
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in nv["repo"]
    daemon = json.loads(_after(run, "NVIDIA toolkit | set Docker's cgroup driver", "gpu1"))
    assert daemon["exec-opts"] == ["native.cgroupdriver=cgroupfs"]
    assert not run.task_results("NVIDIA toolkit | add NVIDIA's apt repository", host="cpu1")
    gpu_check = run.task_results("NVIDIA toolkit | check that a container sees the GPU", host="gpu1")
    assert [e["event"] for e in gpu_check] == ["runner_on_skipped"]  # no Docker, no GPU here

    # onnx_runtime: Dockerfiles with every package pinned, per flavour of each kind.
    dockerfiles = {
        (host, flavour): _after(run, f"ONNX runtimes | render the Dockerfile for {flavour}", host)
        for host, flavour in (("cpu1", "cpu"), ("cpu1", "openvino"), ("gpu1", "gpu"))
    }
    # The A100 node builds the CPU images too (its EPYC CPUs price the server-CPU option).
    for flavour in ("cpu", "openvino"):
        assert _after(run, f"ONNX runtimes | render the Dockerfile for {flavour}", "gpu1") == \
            dockerfiles[("cpu1", flavour)]
    for text in dockerfiles.values():
        # A build stage where pip runs, and the image the venvs are copied into.
        assert text.count("FROM python:3.11-slim-bookworm") == 2
        pip_args = re.findall(r"^\s+([A-Za-z][\w.-]*)(==\S+)?\s*\\?$", text, re.M)
        assert pip_args and all(version for _, version in pip_args), pip_args
    cpu_file = dockerfiles[("cpu1", "cpu")]
    for pin in ("onnxruntime==1.32.0", "torch==2.13.0+cpu",
                "--extra-index-url https://download.pytorch.org/whl/cpu", "neural-compressor==3.7.1",
                "numpy==1.26.4", "onnx==1.16.2", "onnxruntime==1.19.2", "ai-edge-litert==2.3.0"):
        assert pin in cpu_file, pin
    # The torch variants serve the prepared .pt2: no torchvision; Inductor gets its compiler.
    assert "torchvision==" not in cpu_file and "g++" in cpu_file
    assert "onnxruntime-openvino==1.24.1" in dockerfiles[("cpu1", "openvino")]
    # The openvino image's openvino is the EP's own release (and so numpy < 2.4); the cpu image's
    # serves torch-compile-openvino beside torch and numpy 2.4.
    for pin in ("openvino==2025.4.1", "numpy==2.3.5"):
        assert pin in dockerfiles[("cpu1", "openvino")], pin
    assert "openvino==2026.4.1" in cpu_file and "numpy==2.4.6" in cpu_file
    gpu_file = dockerfiles[("gpu1", "gpu")]
    assert "onnxruntime-gpu==1.31.1" in gpu_file and "tensorrt-cu13-libs==10.16.1.11" in gpu_file
    assert "--extra-index-url https://pypi.nvidia.com" in gpu_file and "cu12" not in gpu_file
    ld_path = re.search(r"^\s*LD_LIBRARY_PATH=(\S+)", gpu_file, re.M).group(1).split(":")
    assert any(p.endswith("/nvidia/cudnn/lib") for p in ld_path)
    assert any(p.endswith("/tensorrt_libs") for p in ld_path)
    # edge: the native venv, pinned like the images (pip does not run in check mode).
    pip = run.task_results("ONNX runtimes | install onnxruntime and LiteRT into the edge venv",
                           host="edge1")
    assert pip and "onnxruntime==1.32.0" in pip[0]["res"]["invocation"]["module_args"]["name"]

    # food11_dataset: from the local archive; unpack and layout do not run in check mode.
    copy = _module_result(run, "Food-11 | copy the local archive", "cpu1")
    assert copy["changed"]

    # Check mode wrote nothing on the host, nor in the test's own system paths.
    assert {p for p in WRITTEN_NOWHERE if Path(p).exists()} == already
    assert [p for p in own_paths.values() if Path(p).exists()] == []
