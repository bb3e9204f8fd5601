"""Real sshds behind the fake's floating IPs: one per address, on port 22, keys as authorized.

Port 22 on a distinct 127.x.y.z address per floating IP, so a generated inventory needs no port
tricks: ``ssh <user>@<floating ip>`` works as it would on Chameleon (the user is the one running
the tests, see ``FakeChameleon.ssh_user``). Where port 22 cannot be had on loopback (an sshd of
the machine's own listening on 0.0.0.0:22), ``choose_port`` falls back to one free port for all.
"""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

from tests.support.sshd import SshHost, start_host

from .dockerzun import Relay

SSH_PORT = 22


def port_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def choose_port(address: str) -> int:
    """22 when it is free on ``address`` (127.A.B.x of this fake), else a free port."""
    if port_free(address, SSH_PORT):
        return SSH_PORT
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class SshHosts:
    def __init__(self, root: Path):
        self.root = root
        self.port = SSH_PORT
        self._lock = threading.Lock()
        self._hosts: dict[str, SshHost] = {}
        self._relays: dict[str, Relay] = {}

    def up(self, address: str, public_keys: list[str]) -> SshHost:
        """Start an sshd on ``address``:``port`` (or keep the running one), authorizing
        ``public_keys``."""
        with self._lock:
            host = self._hosts.get(address)
            if host is None:
                host = start_host(self.root / address, address=address, public_key=public_keys[0],
                                  port=self.port)
                self._hosts[address] = host
            for key in public_keys:
                host.authorize(key)
            return host

    def relay(self, address: str, target: tuple[str, int]) -> None:
        """Forward ``address``:``port`` to ``target`` (a real container's sshd), or keep doing so."""
        with self._lock:
            if address not in self._relays:
                self._relays[address] = Relay((address, self.port), target)

    def down(self, address: str) -> None:
        with self._lock:
            host = self._hosts.pop(address, None)
            relay = self._relays.pop(address, None)
        if relay is not None:
            relay.stop()
        if host is not None:
            host.stop()
            shutil.rmtree(host.root, ignore_errors=True)

    def addresses(self) -> list[str]:
        with self._lock:
            return sorted({*self._hosts, *self._relays})

    def stop_all(self) -> None:
        for address in self.addresses():
            self.down(address)
