"""arm64 containers on an amd64 machine: qemu-user through binfmt, and an arm64 base image.

Only qemu-user-static from Debian's bookworm-backports suite (10.x) runs onnxruntime: bookworm's
own 7.2 crashes on ``import onnxruntime``. The arm64 debootstrap runs its second stage under
emulation (about 4.5 min), so the image is made once per machine (file-locked by
``ensure_base_image``) and reused by every test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.support import docker

BACKPORTS = "bookworm-backports"
BACKPORTS_LIST = Path("/etc/apt/sources.list.d/servebench-bookworm-backports.list")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
EDGE_IMAGE = "servebench-test/edge:bookworm-arm64"
# What the CHI@Edge image (arm64v8/python:3.11-slim-bookworm) has, plus what the edge tutorial's
# cells install by hand is NOT here: openssh-server comes through Zun's execute, as on the testbed.
EDGE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "procps")
MIN_QEMU_MAJOR = 8


def _qemu_major() -> int:
    exe = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not exe:
        return 0
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.", out)
    return int(found.group(1)) if found else 0


def _registered() -> bool:
    entry = BINFMT / "qemu-aarch64"
    return entry.exists() and entry.read_text().startswith("enabled")


def ensure_qemu_aarch64() -> None:
    """Install backports' qemu-user-static and register it with binfmt_misc (F: fix-binary)."""
    if _qemu_major() >= MIN_QEMU_MAJOR and _registered():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise docker.DockerUnavailable(
            "arm64 emulation needs root on Debian: qemu-user-static from bookworm-backports + binfmt")
    with docker._locked():
        if _qemu_major() < MIN_QEMU_MAJOR:
            if not BACKPORTS_LIST.exists():
                BACKPORTS_LIST.write_text(
                    f"deb {docker.DEBIAN_MIRROR} {BACKPORTS} main\n")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            done = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "-t", BACKPORTS, "qemu-user-static",
                 "qemu-user-binfmt", "binfmt-support"],
                env=env, capture_output=True, text=True)
            if done.returncode != 0 or _qemu_major() < MIN_QEMU_MAJOR:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise docker.DockerUnavailable(
                    f"qemu-user-static >= {MIN_QEMU_MAJOR} from {BACKPORTS} not installed: {tail[0]}")
        if not (BINFMT / "register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                           capture_output=True, check=False)
        if not (BINFMT / "register").exists():
            raise docker.DockerUnavailable("binfmt_misc cannot be mounted here (no arm64 emulation)")
        _register()
        if not _registered():
            raise docker.DockerUnavailable("qemu-aarch64 could not be registered with binfmt_misc")


def _register() -> None:
    """Backports' qemu (10.x) ships a systemd binfmt.d entry, not an update-binfmts one, and no
    systemd runs here: write that entry to the kernel ourselves. Flag F (fix binary) makes the
    kernel open the interpreter now, so it works inside containers that do not have it."""
    if (BINFMT / "qemu-aarch64").exists():
        (BINFMT / "qemu-aarch64").write_text("1")
        return
    subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, check=False)
    if _registered() or not BINFMT_CONF.exists():
        return
    entry = BINFMT_CONF.read_text().strip()
    if "F" not in entry.rsplit(":", 1)[-1]:
        entry += "F"
    (BINFMT / "register").write_text(entry)


def ensure_edge_image(tag: str = EDGE_IMAGE) -> str:
    """The arm64 Debian 12 image an emulated CHI@Edge container runs (Python 3.11, no sshd)."""
    docker.ensure_dockerd()
    ensure_qemu_aarch64()
    return docker.ensure_base_image(tag, arch="arm64", include=EDGE_PACKAGES)


if __name__ == "__main__":  # CI (or a person) can build it ahead: python -m tests.support.arm64
    print(ensure_edge_image())
