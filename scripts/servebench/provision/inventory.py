"""The Ansible inventory chi-up writes: ``inventory/chi_<name>.yml`` (git-ignored), beside the
embedded ``inventory/local.yml`` that declares the three groups.

Groups: ``gpu_servers``, ``cpu_servers``, ``edge_devices``. A bare-metal node with an A100
(``compute_liqid``, ``compute_gigaio``) is in BOTH ``gpu_servers`` and ``cpu_servers``: the
study runs its CPU variants (AMD EPYC) and its GPU variants on the same node. Its ``host_kind``
is ``gpu_server``, whose runs (roles/benchmark/defaults/main.yml) include the CPU ones, recorded
as ``cpu_server`` so the report judges them on the server-CPU target.

Host vars: ``ansible_host`` (floating IP), ``ansible_port``, ``ansible_user`` (``cc`` on
servers, ``root`` in containers), ``ansible_ssh_private_key_file``, ``site``, ``lease_end``
(ISO, UTC), and SSH options that pin each node's host key on first contact in a known_hosts
file of the deployment (floating IPs are reused, so the user's own known_hosts would clash).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from servebench.files import write_private

INVENTORY_DIR = Path("inventory")


def default_path(name: str, base: Path | None = None) -> Path:
    return (base or Path.cwd()) / INVENTORY_DIR / f"chi_{name}.yml"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int
    user: str
    key: Path
    site: str
    lease_end: str
    kind: str            # "server" or "container"
    has_gpu: bool = False

    @property
    def groups(self) -> tuple[str, ...]:
        if self.kind == "container":
            return ("edge_devices",)
        return ("gpu_servers", "cpu_servers") if self.has_gpu else ("cpu_servers",)

    @property
    def host_kind(self) -> str:
        if self.kind == "container":
            return "edge"
        return "gpu_server" if self.has_gpu else "cpu_server"


def render(deployment: str, hosts: list[Host], known_hosts: Path) -> dict:
    host_vars = {
        h.name: {
            "ansible_host": h.address,
            "ansible_port": h.port,
            "ansible_user": h.user,
            "ansible_ssh_private_key_file": str(h.key),
            "ansible_ssh_common_args": (f"-o StrictHostKeyChecking=accept-new "
                                        f"-o UserKnownHostsFile={known_hosts}"),
            "host_kind": h.host_kind,
            "site": h.site,
            "lease_end": h.lease_end,
            "servebench_deployment": deployment,
        }
        for h in hosts
    }
    groups = {g: {"hosts": {h.name: None for h in hosts if g in h.groups}}
              for g in ("gpu_servers", "cpu_servers", "edge_devices")}
    return {"all": {"hosts": host_vars, "children": {g: v for g, v in groups.items() if v["hosts"]}}}


def write(path: Path, deployment: str, hosts: list[Host], known_hosts: Path) -> Path:
    """Write atomically; 0600 because it names the private key file."""
    text = (f"# Written by chi-up for deployment {deployment}; chi-down removes it.\n"
            + yaml.safe_dump(render(deployment, hosts, known_hosts), sort_keys=False))
    write_private(path, text)
    return path
