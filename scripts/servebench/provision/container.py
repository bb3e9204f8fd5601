"""A Zun container on an edge device, made into an SSH host so Ansible reaches it like any node.

python-chi quirks handled here:
- ``Container.submit`` always sends ``device_profiles``, which upstream python-zunclient
  rejects (only Chameleon's fork knows it): we append the key to
  ``zunclient.v1.containers.CREATION_ATTRIBUTES`` around the create call.
- ``Container.submit``'s default ``show="widget"`` prints HTML objects outside Jupyter; we pass
  ``show=None`` and wait ourselves.
- ``Container.delete()`` never releases the container's floating IP (teardown does).

The SSH bootstrap follows the CHI@Edge tutorial (openssh-server, our key, sshd) but fits
CHI@Edge's Zun: its Kubernetes driver stops waiting for ``execute`` after ``execute_timeout``
(5 s) and answers ``exit_code: null`` while the command goes on, so ``apt-get`` can never report
success through it. The steps therefore go into a script uploaded with the key (``upload`` has a
120 s limit of its own), started detached with its output in a log file, and polled with short
``execute`` calls that each finish well within 5 s, until its exit status file appears or the
deadline passes. A pod restart gives the container a fresh file system (no sshd, no key): the
status file is gone then, which is how chi-status tells it, and running the bootstrap again
repairs it (chi-up does on reuse).
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
# Where the bootstrap keeps its script, log and exit status inside the container.
WORKDIR = "/root/.servebench"
SCRIPT = f"{WORKDIR}/bootstrap-ssh.sh"
LOG = f"{WORKDIR}/bootstrap-ssh.log"
STATUS = f"{WORKDIR}/bootstrap-ssh.rc"
# What the detached script does; every line is idempotent, so a repair runs it all again.
BOOTSTRAP_SCRIPT = """#!/bin/sh
# Written by chi-up. Runs detached: Zun's execute stops waiting after 5 s.
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server
mkdir -p /run/sshd
chmod 700 /root/.ssh
chown root:root /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
/usr/sbin/sshd
"""
# Zun splits a command on spaces and runs it without a shell: sh -c gives us one. Output and
# stdin away from the exec stream, so the exec returns as soon as sh has forked the job.
START = (f"sh -c '(sh {SCRIPT}; echo $? > {STATUS}) > {LOG} 2>&1 < /dev/null &'")
LIST = f"ls -1 {WORKDIR}"
READ_STATUS = f"cat {STATUS}"
LOG_TAIL = f"tail -n 15 {LOG}"
PREPARE = f"sh -c 'rm -f {STATUS}; mkdir -p /root/.ssh {WORKDIR}'"
DEFAULT_DEADLINE_S = 900.0


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


def _execute(container_id: str, command: str) -> tuple[str, object]:
    """One Zun ``execute``: (output, exit code; None when Zun stopped waiting for it)."""
    import chi.container

    result = chi.container.execute(container_id, command) or {}
    return (result.get("output") or ""), result.get("exit_code")


def _short_step(container_id: str, command: str) -> str:
    """A command that finishes within Zun's 5 s; its output, or ProvisionError with why."""
    output, code = _execute(container_id, command)
    if code in (0, "0"):
        return output
    tail = output.strip().splitlines()[-1:] or ["no output"]
    state = ("did not finish within Zun's execute timeout" if code in (None, "None")
             else f"exited {code}")
    raise ProvisionError(f"container command {command!r} {state}: {tail[0][:200]}")


def bootstrap_state(container_id: str) -> str:
    """``"ready"``, ``"running"``, ``"failed <code>"``, or ``"absent"``: never bootstrapped, or
    the file system was reset by a pod restart (the script is gone with it)."""
    listing, code = _execute(container_id, LIST)
    names = listing.split() if code in (0, "0") else []
    if Path(SCRIPT).name not in names:
        return "absent"
    if Path(STATUS).name not in names:
        return "running"
    status = _short_step(container_id, READ_STATUS).strip()
    return "ready" if status == "0" else f"failed {status or '?'}"


def bootstrap_ssh(container_id: str, public_key: str, say: Callable[[str], None],
                  timeout_s: float = DEFAULT_DEADLINE_S) -> None:
    """openssh-server, our public key for root, sshd: through Zun, before any SSH exists."""
    import chi.container

    _short_step(container_id, PREPARE)
    say("  container: uploading authorized key and the SSH bootstrap script")
    with tempfile.TemporaryDirectory() as tmp:
        keyfile = Path(tmp) / "authorized_keys"
        keyfile.write_text(public_key.strip() + "\n")
        chi.container.upload(container_id, str(keyfile), "/root/.ssh")
        script = Path(tmp) / Path(SCRIPT).name
        script.write_text(BOOTSTRAP_SCRIPT)
        chi.container.upload(container_id, str(script), WORKDIR)
    say("  container: installing and starting sshd (detached; polling its status)")
    _short_step(container_id, START)

    def probe() -> tuple[bool, str]:
        state = bootstrap_state(container_id)
        if state.startswith("failed"):
            tail = _execute(container_id, LOG_TAIL)[0].strip().splitlines()[-5:]
            raise ProvisionError(
                f"the SSH bootstrap in the container {state.replace('failed', 'exited')}: "
                + (" | ".join(line[:160] for line in tail) or "no output"),
                hint=f"its log is {LOG} in the container")
        if state == "absent":
            raise ProvisionError("the SSH bootstrap's status file vanished: the container "
                                 "was restarted with a fresh file system", hint="run chi-up again")
        return state == "ready", state

    wait_for("SSH bootstrap in the container", probe, timeout_s, say,
             hint=f"apt-get in the container is slow or stuck; see {LOG} in the container")
