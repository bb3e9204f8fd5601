"""The server path for real: bench.yml against a loopback SSH node of kind gpu_server whose setup
installs Docker (the docker role, no-init knob: it starts and restarts dockerd itself), builds the
cpu, openvino and gpu runtime images from the shipped Dockerfiles, and runs every server variant
inside them; then the gpu image's provider-library check.

The node's Docker daemon is this test's own (its daemon.json puts socket, data and state under a
temporary folder), so the machine's daemon and its images are never touched, its build cache
does not hide a broken Dockerfile, and teardown removes every image made here. Docker Hub is
not reachable: the base image is made from Debian's packages (tests/support/docker.py) under the
default base image's name and put into the node's daemon before setup runs, as a node's cache.
pip in the builds gets the host's CA bundle and the local torch CPU wheel through the role's
pip knobs; PyTorch's and NVIDIA's indexes are unreachable, so the gpu image is built without
TensorRT (onnx_runtime_gpu_tensorrt: false) and the check proves its absence is caught.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from servebench.runner import run_playbook

from tests.support.control_side import (ENGINE_ENV, SECRETS, kill_tree, process_environ,
                                        processes_naming, start_bench, wait_until)
from tests.support.docker import DockerUnavailable, docker_cli, ensure_base_image
from tests.support.helper_envs import LITERT_PROBE, helper_python

from .conftest import (
    LOCAL_INVENTORY,
    RUNNER_ENV,
    bench,
    node_vars,
    read_json,
    write_inventory,
)

# CI runs this (20 min on 2 cores shared with other work; README, Tests, gives CI's time); it skips
# without root or where Docker cannot be installed, and SERVEBENCH_REAL_NODES=0 leaves it out.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.environ.get("SERVEBENCH_REAL_NODES") == "0",
    reason="SERVEBENCH_REAL_NODES=0: the whole server node (Docker, three images built cold) left out")]

BASE_IMAGE = "python:3.11-slim-bookworm"  # roles/onnx_runtime/defaults/main.yml
WHEELS = Path("/opt/wheels")              # this machine's torch-2.13.0+cpu wheel
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CPU_VARIANTS = ["torch-eager", "torch-compile", "onnx-cpu", "onnx-unoptimized", "onnx-optimized",
                "onnx-int8-dynamic",
                "onnx-int8-static-aggressive", "onnx-int8-static-conservative", "tflite",
                "tflite-int8"]
GPU_VARIANTS = ["onnx-cuda", "onnx-tensorrt"]


class NodeDocker:
    """The node's daemon: its daemon.json and where it keeps everything (a short path: the
    socket's must fit in 108 bytes)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sb-dockerd-"))
        self.socket = f"unix://{self.root}/docker.sock"
        self.pidfile = self.root / "docker.pid"
        self.daemon_json = self.root / "daemon.json"
        self.log = self.root / "dockerd.log"
        # What the node's admin configured before servebench: the role merges its own options in.
        self.options = {
            "hosts": [self.socket], "data-root": str(self.root / "data"),
            "exec-root": str(self.root / "exec"), "pidfile": str(self.pidfile),
            # Sandboxes refuse iptables; builds and runs use --network host / none.
            "iptables": False, "bridge": "none",
        }
        self.daemon_json.write_text(json.dumps(self.options))

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([docker_cli(), "-H", self.socket, *args], capture_output=True,
                              text=True, **kw)

    def start(self) -> None:
        log = open(self.log, "ab")
        subprocess.Popen(["dockerd", "--config-file", str(self.daemon_json)], stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while self.cli("info").returncode != 0:
            if time.monotonic() > deadline:
                raise DockerUnavailable(f"the node's dockerd did not answer: {self.log}")
            time.sleep(0.5)

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)

    def remove(self) -> None:
        """Everything the daemon made: a namespace mount it left under exec-root first."""
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
            subprocess.run(["umount", mount], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def node_docker():
    """A node whose data root holds the base image and whose daemon is down: setup starts it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the docker role installs packages and runs dockerd")
    try:
        ensure_base_image(BASE_IMAGE)
    except DockerUnavailable as exc:
        pytest.skip(str(exc))
    node = NodeDocker()
    try:
        node.start()
        save = subprocess.Popen([docker_cli(), "save", BASE_IMAGE], stdout=subprocess.PIPE)
        loaded = node.cli("load", stdin=save.stdout)
        save.wait()
        assert loaded.returncode == 0, loaded.stderr
        node.stop()
        yield node
    finally:
        node.stop()
        node.remove()


def _node_inventory(tmp_path: Path, sshd, ssh_key: Path, node: NodeDocker, tag: str) -> Path:
    hostvars = node_vars(sshd, ssh_key, tmp_path / "gpu1", **{
        # Docker: Debian's docker.io (Docker's repository is unreachable here), no init system.
        "docker_install_from": "distribution",
        "docker_service_manager": "none",
        "docker_daemon_json_path": str(node.daemon_json),
        "docker_dockerd_pidfile": str(node.pidfile),
        "docker_dockerd_log": str(node.log),
        "docker_host": node.socket,
        # root needs no docker group; the test leaves the machine's groups alone.
        "docker_users": [],
        # No GPU, no NVIDIA repository: the toolkit is not installed, the gpu image runs
        # without --gpus and its variants record skipped.
        "nvidia_container_toolkit_enabled": False,
        "benchmark_gpu_docker_args": [],
        # Images of this session only.
        "onnx_runtime_image_tag": tag,
        "onnx_runtime_build_dir": str(tmp_path / "images"),
        # pip inside the builds: this machine's CA bundle and its torch CPU wheel.
        "onnx_runtime_build_network": "host",
        "onnx_runtime_pip_ca_bundle": str(CA_BUNDLE),
        "onnx_runtime_pip_wheel_dir": str(WHEELS),
        "onnx_runtime_torch_index_url": "",
        "onnx_runtime_gpu_tensorrt": False,
    })
    # The kind's own flavours and runs (node_vars turns them off for the native runs).
    for key in ("onnx_runtime_flavours", "benchmark_runs"):
        del hostvars[key]
    return write_inventory(tmp_path / "chi_docker.yml", {"gpu_servers": {"gpu1": hostvars}})


def _failures(run) -> list[str]:
    """Each failed task's host, name and message: what a 12-minute run's assertion should show."""
    return [f"{e.get('host')}: {e.get('task')}: {str(e['res'].get('msg') or e['res'].get('stderr'))[-600:]}"
            for e in run.task_results() if e["event"].endswith("failed")]


# Cold builds of three images (about 3 GB of wheels) then eleven variants: far past the suite's
# per-test limit on two cores.
@pytest.mark.timeout(3000)
def test_gpu_server_over_ssh_builds_images_and_runs_every_variant_inside(
        tmp_path, ssh_hosts, ssh_key, node_docker):
    # The prepare play converts the node's .tflite there, and quantises it to INT8.
    helper_python(".venv-litert", LITERT_PROBE)
    if not any(WHEELS.glob("torch-*+cpu-*.whl")):
        pytest.skip(f"no torch CPU wheel in {WHEELS}: PyTorch's CPU index is unreachable here")
    tag = f"test-{uuid.uuid4().hex[:8]}"
    inventory = _node_inventory(tmp_path, ssh_hosts("127.0.0.2"), ssh_key, node_docker, tag)
    started = time.monotonic()
    run = bench(tmp_path, [LOCAL_INVENTORY, inventory], extravars={"profile": "smoke"})
    print(f"bench.yml with cold builds: {time.monotonic() - started:.0f} s")
    assert run.ok, (run.rc, run.status, run.artifact_dir, _failures(run))
    run_dir = run.run_dir

    # Setup started dockerd itself, then restarted it for the merged daemon.json.
    assert run.task_results("Docker | start dockerd in the background", host="gpu1")
    assert run.task_results("Docker | stop dockerd", host="gpu1")
    daemon = json.loads(node_docker.daemon_json.read_text())
    assert daemon["log-driver"] == "json-file" and daemon["data-root"] == node_docker.options["data-root"]
    for flavour in ("cpu", "openvino", "gpu"):
        built = run.task_results(f"ONNX runtimes | build the image for {flavour}", host="gpu1")
        assert built and built[0]["res"]["changed"], flavour
        print(f"{flavour}: build {built[0]['res']['delta']}, "
              f"{node_docker.cli('image', 'inspect', '--format', '{{.Size}}', f'servebench-runtime-{flavour}:{tag}').stdout.strip()} bytes")
    check = run.task_results("ONNX runtimes | fail on a library the image lacks", host="gpu1")
    assert check and "libonnxruntime_providers_cuda.so" in check[0]["res"]["msg"]

    prepared = run_dir / "prepared" / "random-init-mobilenet_v2.onnx"
    assert prepared.with_suffix(".pt2").is_file()
    image_ids = {}
    for variant in CPU_VARIANTS + ["openvino"]:
        record = read_json(run_dir / "gpu1" / f"{variant}.json")
        assert record["status"] == "ok", (variant, record.get("reason"))
        assert record["host_kind"] == "cpu_server"
        # The node served the control node's model, every variant the same weights.
        assert record["model"]["source"].endswith("/random-init-mobilenet_v2.onnx")
        image = record["environment"]["runtime_image"]
        image_ids[variant] = image["id"]
        flavour = "openvino" if variant == "openvino" else "cpu"
        assert image["name"] == f"servebench-runtime-{flavour}:{tag}"
        assert image["id"] == node_docker.cli("image", "inspect", "--format", "{{.Id}}",
                                              image["name"]).stdout.strip()
    torch_eager = read_json(run_dir / "gpu1" / "torch-eager.json")
    assert torch_eager["info"]["served_as"] == "torch.export program"
    assert torch_eager["accuracy"] == read_json(run_dir / "gpu1" / "onnx-cpu.json")["accuracy"]
    assert read_json(run_dir / "gpu1" / "torch-compile.json")["info"]["first_call_s"]
    for variant in GPU_VARIANTS:
        record = read_json(run_dir / "gpu1" / f"{variant}.json")
        assert record["status"] == "skipped" and "libcuda.so.1" in record["reason"], record["reason"]
        assert record["environment"]["runtime_image"]["name"] == f"servebench-runtime-gpu:{tag}"
    assert read_json(run_dir / "gpu1" / "host_status.json")["status"] == "ok"
    # The server-CPU verdict: the node's CPU records judged as cpu_server, on the Server CPU target.
    verdict = (run_dir / "report.md").read_text().split("## Verdict", 1)[1].split("## Variants")[0]
    assert "gpu1" in verdict and "cpu_server" in verdict and "Server CPU" in verdict
    assert any(f"**{word}**" in verdict for word in ("PASS", "FAIL", "INCONCLUSIVE")), verdict

    # A second setup: nothing changes, no image is rebuilt.
    again = bench(tmp_path, [LOCAL_INVENTORY, inventory], extravars={"profile": "smoke"},
                  tags=["setup"], artifact_dir=run_dir / "runner-setup-again")
    assert again.ok, (again.rc, again.status, _failures(again))
    assert again.changed("gpu1") == 0, again.stats["changed"]
    for flavour in ("cpu", "openvino", "gpu"):
        rebuilt = again.task_results(f"ONNX runtimes | build the image for {flavour}", host="gpu1")
        assert all(e["event"] == "runner_on_skipped" for e in rebuilt), flavour

    # Issue 17 in Docker, on the images built above (no second build).
    _an_orphaned_container_is_stopped_and_saw_no_secret(tmp_path, inventory, node_docker, run_dir)


def _an_orphaned_container_is_stopped_and_saw_no_secret(tmp_path: Path, inventory: Path,
                                                        node: NodeDocker, run_dir: Path) -> None:
    """OS_* in the controller's environment: neither the engine's container nor the docker client
    that runs it has them. Then the control side dies whole mid-run (SIGKILL): the node stops the
    container by itself within a bound, and gives the node back."""
    prepared = run_dir / "prepared" / "random-init-mobilenet_v2"
    quiet_s = 20
    tflite = prepared.with_suffix(".tflite")
    knobs = {"results_dir": str(tmp_path / "results"), "run_id": "docker-orphan", "profile": "quick",
             "repeats": 100, "variants": "onnx-cpu", "benchmark_control_timeout_s": quiet_s,
             "model": str(prepared.with_suffix(".onnx")), "tflite_model": str(tflite) if tflite.is_file() else ""}
    container = "servebench-cpu"

    def running() -> str:
        return node.cli("ps", "-q", "--filter", f"name={container}").stdout.strip()

    control = start_bench(tmp_path / "orphan.log", [LOCAL_INVENTORY, inventory], knobs, env=SECRETS,
                          tags=["benchmark"])
    try:
        wait_until(lambda: running() or control.poll() is not None, 600, "the cpu container started")
        assert control.poll() is None, (tmp_path / "orphan.log").read_text()[-3000:]
        env = json.loads(node.cli("inspect", "--format", "{{json .Config.Env}}", container).stdout)
        assert not [e for e in env if e.startswith("OS_") or any(v in e for v in SECRETS.values())], env
        clients = [pid for pid in processes_naming(f"--name {container}")
                   if Path(f"/proc/{pid}/comm").read_text().strip() == "docker"]
        assert clients, "no docker client of the engine's container"
        for pid in clients:
            seen = process_environ(pid)
            assert set(seen) <= ENGINE_ENV, sorted(set(seen) - ENGINE_ENV)
    finally:
        kill_tree(control.pid)
        control.wait()
    wait_until(lambda: not running(), quiet_s + 60, "the orphaned container stopped")
    node_dir = tmp_path / "gpu1" / "node"
    log = (node_dir / "runs" / "docker-orphan" / "cpu.log").read_text()
    assert "engine stopped: no word from the control side (ansible-playbook)" in log, log[-2000:]
    assert not (node_dir / "engine.lock").exists()


def test_gpu_check_fails_on_the_image_without_tensorrt(tmp_path, node_docker):
    """The image the first test built has no TensorRT: asked to check the TensorRT provider too,
    setup must fail and name the libraries it lacks."""
    images = node_docker.cli("image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                             "servebench-runtime-gpu").stdout.split()
    if not images:
        pytest.skip("the gpu image was not built (the bench test did not get that far)")
    playbook = tmp_path / "check.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "onnx_runtime",
                                                    "tasks_from": "gpu_check.yml"}}],
    }]))
    run = run_playbook(str(playbook), inventory=[LOCAL_INVENTORY], envvars={
        **RUNNER_ENV, "DOCKER_HOST": node_docker.socket}, extravars={
        "onnx_runtime_image": images[0], "onnx_runtime_gpu_tensorrt": True},
        artifact_dir=tmp_path / "runner")
    assert not run.ok
    failed = run.task_results("ONNX runtimes | fail on a library the image lacks")
    msg = failed[0]["res"]["msg"]
    assert "libnvinfer.so.10" in msg and "libnvonnxparser.so.10" in msg, msg
    assert "libcuda.so.1" not in msg.split("not found:")[1].split("(")[0], msg
