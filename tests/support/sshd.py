"""Real SSH test hosts on loopback: one OpenSSH sshd per host, on a 127.0.0.x address and a port
of its own, with a host key and an authorized key made for the run, stopped by PID.

Used by the fake Chameleon (its floating IPs are such hosts) and by the Ansible tests. Only
loopback addresses are ever used.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    for cand in SSHD_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("sshd")


def ensure_openssh() -> str:
    """Return sshd's path, installing Debian's openssh-server when missing and we are root."""
    found = find_sshd()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("sshd is not installed: apt-get install openssh-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "openssh-server", "openssh-client"],
        check=True, env=env, capture_output=True,
    )
    found = find_sshd()
    if not found:
        raise RuntimeError("openssh-server installed but sshd not found")
    return found


def make_keypair(path: Path) -> Path:
    """An ed25519 key pair at ``path`` / ``path.pub`` (private key 0600)."""
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "servebench-test", "-f", str(path)],
            check=True,
        )
    path.chmod(0o600)
    return path


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def ssh_answers(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class SshHost:
    """One running sshd; ``authorized_keys`` may be rewritten while it runs."""

    address: str
    port: int
    root: Path
    user: str
    proc: subprocess.Popen | None = None

    @property
    def authorized_keys(self) -> Path:
        return self.root / "authorized_keys"

    def authorize(self, public_key: str) -> None:
        existing = self.authorized_keys.read_text() if self.authorized_keys.exists() else ""
        if public_key.strip() not in existing:
            self.authorized_keys.write_text(existing + public_key.strip() + "\n")
        self.authorized_keys.chmod(0o600)

    def start(self, sshd: str, deadline_s: float = 10.0) -> "SshHost":
        self.root.mkdir(parents=True, exist_ok=True)
        host_key = self.root / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        self.authorized_keys.touch(mode=0o600, exist_ok=True)
        config = self.root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AllowUsers {self.user}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "UseDNS no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        # sshd insists on its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "sshd.log", "ab"),
            start_new_session=True,
        )
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd on {self.address}:{self.port} exited: "
                                   f"{(self.root / 'sshd.log').read_text()[-500:]}")
            if ssh_answers(self.address, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd on {self.address}:{self.port} did not answer in {deadline_s}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


def start_host(root: Path, address: str = "127.0.0.1", public_key: str | None = None,
               port: int | None = None) -> SshHost:
    """Start an sshd for the current user on ``address`` (must be in 127.0.0.0/8)."""
    if not address.startswith("127."):
        raise ValueError(f"test hosts live on loopback only, not {address}")
    host = SshHost(address=address, port=port or free_port(address), root=root, user=getpass.getuser())
    if public_key:
        host.root.mkdir(parents=True, exist_ok=True)
        host.authorize(public_key)
    return host.start(ensure_openssh())
