"""Does SSH answer? A real login and command through fabric (as python-chi itself uses), not only
an open port: sshd accepts connections well before the key is installed on a fresh node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from servebench.errors import UsageError

from .waiting import wait_for


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str
    port: int
    key: Path

    def describe(self) -> str:
        port = "" if self.port == 22 else f":{self.port}"
        return f"{self.user}@{self.host}{port}"


def load_key(private: Path, public: Path | None = None) -> tuple[Path, str]:
    """The private key path (absolute) and its public key line (``PATH.pub`` unless given)."""
    private = private.expanduser().resolve()
    public = public.expanduser() if public else private.with_name(private.name + ".pub")
    try:
        with private.open("rb"):
            pass
        line = next((ln.strip() for ln in public.read_text().splitlines() if ln.strip()), "")
    except OSError as exc:
        raise UsageError(f"cannot read SSH key {exc.filename}: {exc.strerror}",
                         hint="pass --key PATH to a private key with PATH.pub beside it") from None
    if len(line.split()) < 2 or not line.split()[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise UsageError(f"{public} is not an OpenSSH public key",
                         hint="make one with ssh-keygen -t ed25519")
    return private, line


def run_command(target: SshTarget, command: str = "true", timeout_s: float = 10.0) -> tuple[bool, str]:
    """Log in and run ``command``; ``(True, "")`` or ``(False, why)``. Never raises."""
    from fabric import Connection
    from paramiko import AutoAddPolicy

    connection = Connection(
        target.host, user=target.user, port=target.port,
        connect_timeout=timeout_s,
        connect_kwargs={"key_filename": str(target.key), "look_for_keys": False,
                        "allow_agent": False, "banner_timeout": timeout_s,
                        "auth_timeout": timeout_s},
    )
    # A fresh node's host key is unknown by definition; the inventory pins it on first use.
    connection.client.set_missing_host_key_policy(AutoAddPolicy())
    try:
        result = connection.run(command, hide=True, warn=True, timeout=timeout_s, in_stream=False)
        if result.ok:
            return True, ""
        return False, f"exit {result.exited}"
    except Exception as exc:  # noqa: BLE001 -- any failure just means "not yet"
        return False, (" ".join(str(exc).split()) or type(exc).__name__)[:120]
    finally:
        connection.close()


def wait_ssh(target: SshTarget, timeout_s: float, say: Callable[[str], None]) -> None:
    def probe() -> tuple[bool, str]:
        ok, why = run_command(target)
        return ok, "answers" if ok else f"not yet ({why})"

    wait_for(f"ssh {target.describe()}", probe, timeout_s, say,
             hint="the node booted but SSH does not let us in; check the key and security groups")
