"""The Ansible inventory chi-up writes: ``inventory/chi_<name>.yml`` (git-ignored), beside the
embedded ``inventory/local.yml`` that declares the three groups.

Groups: ``gpu_servers``, ``cpu_servers``, ``edge_devices``. A bare-metal node with an A100
(``compute_liqid``, ``compute_gigaio``) is in BOTH ``gpu_servers`` and ``cpu_servers``: the
study runs its CPU variants (AMD EPYC) and its GPU variants on the same node. Its ``host_kind``
is ``gpu_server``, whose runs (roles/benchmark/defaults/main.yml) include the CPU ones, recorded
as ``cpu_server`` so the report judges them on the server-CPU target.

Host vars: ``ansible_host`` (floating IP), ``ansible_port``, ``ansible_user`` (``cc`` on
servers, ``root`` in containers), ``ansible_ssh_private_key_file``, ``site``, ``lease_end``
(ISO, UTC; chi-extend moves it), ``node_type`` (what servebench.cost prices the host by;
absent for a node reserved by name), and SSH options that pin each node's host key on first
contact in a known_hosts file of the deployment (floating IPs are reused, so the user's own
known_hosts would clash).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from servebench.errors import UsageError
from servebench.files import write_private

INVENTORY_DIR = Path("inventory")
# Bigger than any inventory chi-up writes: a file this size is not one of ours (and is not read).
_MAX_BYTES = 1024 * 1024


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
    node_type: str | None = None   # what the lease reserved (None: a node reserved by name)

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


def header(deployment: str) -> str:
    """The first line of a deployment's inventory: what chi-down reads as proof it wrote it."""
    return f"# Written by chi-up for deployment {deployment}; chi-down removes it.\n"


def ssh_common_args(known_hosts: Path) -> str:
    """SSH options pinning host keys in ``known_hosts``, quoted twice over: Ansible shlex-splits
    ansible_ssh_common_args, and ssh reads UserKnownHostsFile as a list of files split at
    spaces unless the value is in double quotes (and expands %-tokens in it)."""
    text = str(known_hosts)
    if '"' in text or any(ord(c) < 32 for c in text):
        raise UsageError(f"cannot use {known_hosts!r}: SSH cannot name a file whose path holds "
                         "a double quote or a control character",
                         hint="run chi-up from another folder, or pass another --state")
    option = 'UserKnownHostsFile="' + text.replace("%", "%%") + '"'
    return f"-o StrictHostKeyChecking=accept-new -o {shlex.quote(option)}"


def render(deployment: str, hosts: list[Host], known_hosts: Path) -> dict:
    common_args = ssh_common_args(known_hosts)
    host_vars = {
        h.name: {
            "ansible_host": h.address,
            "ansible_port": h.port,
            "ansible_user": h.user,
            "ansible_ssh_private_key_file": str(h.key),
            "ansible_ssh_common_args": common_args,
            "host_kind": h.host_kind,
            "site": h.site,
            "lease_end": h.lease_end,
            "servebench_deployment": deployment,
            **({"node_type": h.node_type} if h.node_type else {}),
        }
        for h in hosts
    }
    groups = {g: {"hosts": {h.name: None for h in hosts if g in h.groups}}
              for g in ("gpu_servers", "cpu_servers", "edge_devices")}
    return {"all": {"hosts": host_vars, "children": {g: v for g, v in groups.items() if v["hosts"]}}}


def write(path: Path, deployment: str, hosts: list[Host], known_hosts: Path) -> Path:
    """Write atomically; 0600 because it names the private key file."""
    text = header(deployment) + yaml.safe_dump(render(deployment, hosts, known_hosts), sort_keys=False)
    write_private(path, text)
    return path


def _read_ours(path: Path, deployment: str) -> tuple[dict | None, str]:
    """The parsed inventory at ``path`` if chi-up wrote it for ``deployment``, else why not.

    The proof is in the file, not in the state file that names it (a state file can be edited
    to name anything): a regular file, not a link, that starts with this deployment's header
    and whose every host is marked with this deployment."""
    try:
        if not path.is_file() or path.is_symlink():
            return None, "not a regular file"
        with path.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    mark = header(deployment).encode()
    if len(data) > _MAX_BYTES or not data.startswith(mark):
        return None, f"it does not start with chi-up's line for {deployment}"
    try:
        document = yaml.safe_load(data.decode("utf-8"))
        hosts = document["all"]["hosts"]
        ours = bool(hosts) and all(v["servebench_deployment"] == deployment for v in hosts.values())
    except (yaml.YAMLError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        ours = False
    if not ours:
        return None, f"not every host in it belongs to {deployment}"
    return document, ""


def not_ours(path: Path, deployment: str) -> str | None:
    """None when chi-up wrote ``path`` for ``deployment``; else why it is not (to say so)."""
    return _read_ours(path, deployment)[1] or None


def set_lease_end(path: Path, deployment: str, lease_end: str) -> bool:
    """Write the new ``lease_end`` into ``deployment``'s inventory (after an extension); False
    when ``path`` is not an inventory chi-up wrote for it (then nothing is written)."""
    document, _ = _read_ours(path, deployment)
    if document is None:
        return False
    for host_vars in document["all"]["hosts"].values():
        host_vars["lease_end"] = lease_end
    write_private(path, header(deployment) + yaml.safe_dump(document, sort_keys=False))
    return True
