"""A Zun container on an edge device, made into an SSH host so Ansible reaches it like any node.

python-chi quirks handled here:
- ``Container.submit`` always sends ``device_profiles``, which upstream python-zunclient
  rejects (only Chameleon's fork knows it): we append the key to
  ``zunclient.v1.containers.CREATION_ATTRIBUTES`` around the create call.
- ``Container.submit``'s default ``show="widget"`` prints HTML objects outside Jupyter; we pass
  ``show=None`` and wait ourselves.
- ``Container.delete()`` never releases the container's floating IP (teardown does).

The SSH bootstrap follows the CHI@Edge tutorial: install openssh-server through Zun
``execute``, upload the authorized key through Zun ``upload`` (put_archive), start sshd.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable

from servebench.errors import ProvisionError

from .waiting import wait_for

SSH_PORT = "22/tcp"
# Keeps the container alive; the study's work arrives over SSH.
KEEPALIVE = ["sleep", "infinity"]
# Run through sh -c: Zun splits a command on spaces and runs it without a shell.
BOOTSTRAP = (
    "sh -c 'apt-get update -qq'",
    "sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server'",
    "sh -c 'mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh'",
    "UPLOAD",
    "sh -c 'chown root:root /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys'",
    "/usr/sbin/sshd",
)


@contextlib.contextmanager
def _zun_accepts_device_profiles():
    """Let upstream zunclient send the ``device_profiles`` key, for the one create call (the
    list is module state: leaving it changed would alter every later zunclient user)."""
    from zunclient.v1 import containers

    added = "device_profiles" not in containers.CREATION_ATTRIBUTES
    if added:
        containers.CREATION_ATTRIBUTES.append("device_profiles")
    try:
        yield
    finally:
        if added:
            containers.CREATION_ATTRIBUTES.remove("device_profiles")


def find_container(name: str) -> str | None:
    import chi.container

    found = chi.container.get_container(name)
    return found.id if found else None


def launch(name: str, reservation_id: str, image: str) -> str:
    from chi.container import Container

    container = Container(name, image_ref=image, exposed_ports=[SSH_PORT],
                          reservation_id=reservation_id, command=KEEPALIVE)
    with _zun_accepts_device_profiles():
        container.submit(wait_for_active=False, show=None)
    return container.id


def wait_running(container_id: str, name: str, timeout_s: float, say: Callable[[str], None]) -> None:
    from chi.clients import zun

    def probe() -> tuple[bool, str]:
        container = zun().containers.get(container_id)
        status = getattr(container, "status", "?")
        if status == "Error":
            reason = getattr(container, "status_reason", None) or "no reason given"
            raise ProvisionError(f"container {name} went Error: {reason}",
                                 hint="check the image name and that it is built for arm64")
        return status == "Running", status

    wait_for(f"container {name}", probe, timeout_s, say,
             hint="pulling the image on the device can take minutes; raise --wait-timeout")


def associate(container_id: str, address: str) -> None:
    import chi.container

    if chi.container.associate_floating_ip(container_id, floating_ip_address=address) is None:
        raise ProvisionError(f"container {container_id} has no port to bind {address} to")


def bootstrap_ssh(container_id: str, public_key: str, say: Callable[[str], None]) -> None:
    """openssh-server, our public key for root, sshd: through Zun, before any SSH exists."""
    import chi.container

    for step in BOOTSTRAP:
        if step == "UPLOAD":
            say("  container: uploading authorized key")
            with tempfile.TemporaryDirectory() as tmp:
                keyfile = Path(tmp) / "authorized_keys"
                keyfile.write_text(public_key.strip() + "\n")
                chi.container.upload(container_id, str(keyfile), "/root/.ssh")
            continue
        say(f"  container: {step}")
        result = chi.container.execute(container_id, step) or {}
        code = result.get("exit_code")
        if code not in (0, "0"):
            tail = (result.get("output") or "").strip().splitlines()[-1:] or ["no output"]
            raise ProvisionError(f"container command {step!r} exited {code}: {tail[0][:200]}")
