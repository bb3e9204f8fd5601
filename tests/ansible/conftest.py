"""Fixtures for the Ansible tests: real sshd test hosts on loopback, inventories pointing at them,
a Food-11-shaped archive, and bench.yml runs through ansible-runner (servebench.runner).

The "nodes" are this machine reached over real SSH on 127.0.0.x, so the engine runs natively
with this venv's Python (benchmark_native_python) instead of a runtime image.
"""

from __future__ import annotations

import getpass
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from servebench.runner import PlaybookRun, run_playbook
from tests.support.sshd import SshHost, make_keypair, start_host

REPO = Path(__file__).resolve().parents[2]
LOCAL_INVENTORY = REPO / "inventory" / "local.yml"
# Short-lived SSH masters: nothing of ours lingers long after a test.
RUNNER_ENV = {"ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=5s"}


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory) -> Path:
    return make_keypair(tmp_path_factory.mktemp("ssh") / "id_ed25519")


@pytest.fixture
def ssh_hosts(tmp_path, ssh_key) -> Callable[[str], SshHost]:
    """Start an sshd on a loopback address (stopped by PID at teardown)."""
    started: list[SshHost] = []
    public = ssh_key.with_suffix(".pub").read_text()

    def start(address: str) -> SshHost:
        host = start_host(tmp_path / f"sshd-{address}", address=address, public_key=public)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


def node_vars(host: SshHost, key: Path, workdir: Path, **extra: Any) -> dict[str, Any]:
    """Host vars of a test node: real SSH to loopback, the engine run natively with this venv."""
    return {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": getpass.getuser(),
        "ansible_ssh_private_key_file": str(key),
        # As chi-up's inventories do: trust a new host key once, refuse a changed one.
        "ansible_ssh_common_args": f"-o StrictHostKeyChecking=accept-new "
                                   f"-o UserKnownHostsFile={workdir / 'known_hosts'}",
        "ansible_python_interpreter": sys.executable,
        "benchmark_remote_dir": str(workdir / "node"),
        "benchmark_native_python": sys.executable,
        "benchmark_runs": [{"runtime": "arm", "variants": ["onnx-cpu"]}],
        # No venv to build: this machine's venv has the runtimes (pip would need the internet).
        "onnx_runtime_flavours": [],
        "food11_dataset_dir": str(workdir / "food11"),
        **extra,
    }


def write_inventory(path: Path, groups: dict[str, dict[str, dict[str, Any]]]) -> Path:
    doc = {"all": {"children": {g: {"hosts": hosts} for g, hosts in groups.items()}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def food11_archive(path: Path, per_class: int = 2) -> Path:
    """A tiny archive shaped like the tutorial's: Food-11/<split>/<class>_<n>.jpg."""
    from PIL import Image

    with zipfile.ZipFile(path, "w") as zf:
        for split in ("training", "validation", "evaluation"):
            for cls in range(11):
                for n in range(per_class):
                    buf = io.BytesIO()
                    Image.new("RGB", (48, 40), (cls * 20, n * 60, 90)).save(buf, "JPEG")
                    zf.writestr(f"Food-11/{split}/{cls}_{n}.jpg", buf.getvalue())
    return path


def bench(tmp_path: Path, inventory: list[Path], **kwargs: Any) -> PlaybookRun:
    """bench.yml through ansible-runner, results under tmp_path/results."""
    extravars = {"results_dir": str(tmp_path / "results"), **kwargs.pop("extravars", {})}
    return run_playbook("bench.yml", inventory=inventory, extravars=extravars,
                        envvars=RUNNER_ENV, **kwargs)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
