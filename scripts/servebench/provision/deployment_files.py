"""The files a deployment leaves on this machine besides its state file: its Ansible inventory
and the known_hosts file its SSH options pin host keys in. chi-down deletes only those it can
prove chi-up wrote for that deployment.

A state file can be edited to name any path, so what it names is never proof: the inventory must
carry chi-up's first line for this deployment and mark every host with it
(inventory.not_ours); the known_hosts file must be the one chi-up puts beside the state file,
``known_hosts-<name>``, and read as a known_hosts file. Anything else is kept, and chi-down says
so.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

from . import inventory

_MAX_KNOWN_HOSTS_BYTES = 1024 * 1024


def known_hosts_path(state_path: Path, name: str) -> Path:
    """Where chi-up pins the deployment's host keys: beside its state file. The folder is
    resolved, the file name is not (a link there is not followed)."""
    return Path(os.path.realpath(state_path.parent)) / f"known_hosts-{name}"


def _known_hosts_not_ours(path: Path) -> str | None:
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > _MAX_KNOWN_HOSTS_BYTES:
            return "too big for a deployment's known_hosts"
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable ({getattr(exc, 'strerror', None) or 'not text'})"
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("@"):  # @cert-authority / @revoked markers
            fields = fields[1:]
        if line.strip() and not line.lstrip().startswith("#") and (
                len(fields) < 3 or not fields[1].startswith(("ssh-", "ecdsa-", "sk-"))):
            return "not a known_hosts file"
    return None


def _remove(path: Path, why_not: str | None, name: str, say: Callable[[str], None]) -> None:
    if why_not is None:
        path.unlink(missing_ok=True)
    else:
        say(f"kept {path}: {why_not}, so not a file chi-up wrote for {name}")


def remove(name: str, say: Callable[[str], None], *, inventory_path: Path | None,
           state_path: Path, recorded_known_hosts: str | None = None) -> None:
    """Delete ``name``'s inventory and known_hosts where they are provably its own; say what is
    kept and why. Files that do not exist are nothing to do."""
    if inventory_path is not None and os.path.lexists(inventory_path):
        _remove(inventory_path, inventory.not_ours(inventory_path, name), name, say)
    mine = known_hosts_path(state_path, name)
    if recorded_known_hosts and Path(recorded_known_hosts) != mine and os.path.lexists(
            recorded_known_hosts):
        say(f"kept {recorded_known_hosts}: the state file names it, but {name}'s known_hosts "
            f"is {mine}, so not a file chi-up wrote for {name}")
    if os.path.lexists(mine):
        _remove(mine, _known_hosts_not_ours(mine), name, say)
