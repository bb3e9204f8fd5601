"""Zun backed by real Docker: a created container is a real container, ``execute`` a real
``docker exec`` cut at Zun's ``execute_timeout`` (the command goes on), ``put_archive`` a real
copy, deletion a real removal, a pod restart a fresh container from the image.

Network scheme (dockerd here runs with ``--bridge=none``, so containers share the host's network):
each container gets a "pod address" of its own on loopback, 127.A.B.220-254 of its fake, and a
file ``/etc/ssh/sshd_config.d/fakechi.conf`` (``ListenAddress <pod address>:<port>``) plumbed in
at create, so the sshd the bootstrap installs (Debian's sshd_config includes that folder)
listens there and clashes with no other sshd. Binding a floating IP to the container's port
forwards ``<floating IP>:<port>`` to ``<pod address>:<port>`` (a TCP relay in the fake), as
CHI@Edge's floating IP reaches the pod. ``port`` is 22 unless the machine's own sshd holds it
(``FakeChameleon.ssh_port``).

Beyond Zun: the host's CA bundle is mounted read-only, and an ``/etc/pip.conf`` naming it, so pip
in the container trusts what pip on this machine trusts (a TLS-intercepting proxy here; a real Pi
reaches PyPI directly).
"""

from __future__ import annotations

import io
import shlex
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

POD_FIRST, POD_LAST = 220, 254
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass
class DockerZun:
    """How the fake makes containers: ``image_for`` maps a Zun image reference (Docker Hub is not
    reachable here) to a local image, ``platform`` e.g. ``linux/arm64``."""

    docker: str
    image_for: object  # Callable[[str], str]
    platform: str | None = None
    workdir: Path | None = None
    made: dict[str, str] = field(default_factory=dict)  # container id -> docker name
    _pending: list[subprocess.Popen] = field(default_factory=list)

    def _run(self, *args: str, input: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([self.docker, *args], input=input, capture_output=True,
                              timeout=timeout, check=False)

    def start(self, container_id: str, image: str, command, pod: str, port: int) -> str | None:
        """Run the container; None, or why it failed (Zun's status_reason)."""
        name = f"fakechi-{container_id[:12]}"
        self._run("rm", "-f", name)
        argv = command if isinstance(command, list) else shlex.split(command or "sleep infinity")
        pip_conf = self.workdir / "pip.conf"
        pip_conf.write_text(f"[global]\ncert = {CA_BUNDLE}\n")
        done = self._run(
            "run", "-d", "--name", name, "--network", "host", "--label", f"fakechi={self.workdir}",
            *(["--platform", self.platform] if self.platform else []),
            "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro",
            self.image_for(image), *argv)
        if done.returncode != 0:
            return f"Docker internal error: {done.stderr.decode(errors='replace').strip()[:200]}"
        self.made[container_id] = name
        self.put(container_id, "/etc/ssh/sshd_config.d",
                 {"fakechi.conf": f"# the fake's pod address (see tests/fakechi/dockerzun.py)\n"
                                  f"ListenAddress {pod}:{port}\n".encode()})
        return None

    def execute(self, container_id: str, command: str, timeout_s: float) -> tuple[str, int | None]:
        """``docker exec`` of the shlex-split command (Zun runs argv, no shell); after
        ``timeout_s`` the output so far and None, the command left running."""
        proc = subprocess.Popen([self.docker, "exec", self.made[container_id], *shlex.split(command)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read1(4096), b"")),
                                  daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._pending.append(proc)
            return b"".join(chunks).decode(errors="replace"), None
        reader.join(5)
        return b"".join(chunks).decode(errors="replace"), code

    def put(self, container_id: str, path: str, members: dict[str, bytes]) -> None:
        """A real copy: the files as a tar archive through ``docker cp -``."""
        self._run("exec", self.made[container_id], "mkdir", "-p", path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, content in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(content), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(content))
        done = self._run("cp", "-", f"{self.made[container_id]}:{path}", input=buf.getvalue())
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace").strip()[:200])

    def remove(self, container_id: str) -> None:
        name = self.made.pop(container_id, None)
        if name:
            self._run("rm", "-f", name)

    def existing(self) -> list[str]:
        """Docker's own list of this fake's containers (by label), whatever the fake believes."""
        out = self._run("ps", "-aq", "--filter", f"label=fakechi={self.workdir}").stdout
        return out.decode().split()

    def stop_all(self) -> None:
        for container_id in list(self.made):
            self.remove(container_id)
        for proc in self._pending:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._pending.clear()


class Relay:
    """``listen`` -> ``target`` TCP forwarding, a thread per direction per connection."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"relay-{listen[0]}")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # nothing listens in the pod yet: refused, as through NAT
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(2)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
