"""A real Docker engine and locally made base images, for the tests that build and run images.

Docker Hub is not reachable from the test machines, so base images are made here from Debian's
packages (``debootstrap`` then ``docker import``) and tagged with the name the shipped
Dockerfiles use: the Dockerfiles under test are the real ones. No systemd either: ``dockerd`` is
started by hand when nothing answers (and left running for the next test; CI's machine is thrown
away after the run).

Several pytest processes may want the same image at once (helpers, xdist): a file lock
serialises the slow parts (install, start, debootstrap).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "servebench-docker.lock"
DOCKERD_LOG = Path(tempfile.gettempdir()) / "servebench-dockerd.log"
# Debian 12 ships Python 3.11: the same release and Python minor as python:3.11-slim-bookworm.
SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")


class DockerUnavailable(RuntimeError):
    """Why these tests cannot run here (the skip reason)."""


@contextlib.contextmanager
def _locked():
    with open(LOCK, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DockerUnavailable(f"apt-get install {' '.join(packages)} failed: {tail[0]}")


def docker_cli() -> str:
    # Debian's docker.io client matches its daemon; another client on PATH may be newer.
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def _answers() -> bool:
    try:
        return subprocess.run([docker_cli(), "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_dockerd() -> str:
    """Return the docker CLI's path once a daemon answers; install and start one if we may."""
    if shutil.which("dockerd") and _answers():
        return docker_cli()
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DockerUnavailable("needs a Docker engine: run as root on Debian/Ubuntu "
                                "(apt-get install docker.io), or start dockerd")
    with _locked():
        if not shutil.which("dockerd"):
            _apt_install("docker.io")
        if not _answers():
            # --iptables=false --bridge=none: sandboxes often refuse iptables; the containers
            # the tests run use the host's network.
            log = open(DOCKERD_LOG, "ab")
            subprocess.Popen(["dockerd", "--iptables=false", "--bridge=none"], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 60
            while not _answers():
                if time.monotonic() > deadline:
                    tail = DOCKERD_LOG.read_text(errors="replace").strip().splitlines()[-3:]
                    raise DockerUnavailable(f"dockerd did not answer within 60 s: {' | '.join(tail)}")
                time.sleep(0.5)
    return docker_cli()


def image_exists(tag: str) -> bool:
    return subprocess.run([docker_cli(), "image", "inspect", tag], capture_output=True).returncode == 0


def ensure_base_image(tag: str, arch: str = "amd64", include: tuple[str, ...] = BASE_PACKAGES) -> str:
    """Make ``tag`` from Debian's packages unless it exists; return the tag.

    ``arch`` other than the machine's needs qemu-user binfmt support registered first.
    """
    ensure_dockerd()
    if image_exists(tag):
        return tag
    with _locked():
        if image_exists(tag):
            return tag
        if not shutil.which("debootstrap"):
            _apt_install("debootstrap")
        with tempfile.TemporaryDirectory(prefix="servebench-rootfs-") as root:
            done = subprocess.run(
                ["debootstrap", f"--arch={arch}", "--variant=minbase",
                 f"--include={','.join(include)}", SUITE, root, DEBIAN_MIRROR],
                capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
                raise DockerUnavailable(f"debootstrap {arch} failed: {' | '.join(tail)}")
            # apt lists and caches only make the image bigger.
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(Path(root) / junk, ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                [docker_cli(), "import", "--platform", f"linux/{arch}",
                 "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--change", 'CMD ["python3"]', "-", tag],
                stdin=tar.stdout, capture_output=True, text=True)
            tar.wait()
            if imported.returncode != 0:
                raise DockerUnavailable(f"docker import {tag} failed: {imported.stderr.strip()[:300]}")
    return tag
