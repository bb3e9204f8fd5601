"""Everything the fake Chameleon holds, and how it changes over time.

One lock guards it all. Resources progress through their states when looked at (a GET of that
resource, a "poll") or as time passes, per ``Timing``; the fake clock can be moved forward with
``advance`` to start a future lease or reach a lease's end. Side effects that make the fake real
happen here: a floating IP on an ACTIVE server's port, or on a container that ran its sshd
start command, gets a real sshd on that address (port 22, see ``sshhosts``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .http import ApiError
from .sites import Reservable, SiteSpec
from .sshhosts import SshHosts, port_free
from .zunshell import Shell


@dataclass
class Timing:
    """How fast things move. The default makes every resource reach its final state on its first
    GET, so python-chi's 5 s poll loops never sleep; ``steps_per_poll=1`` shows each state in turn
    (a container is Created one poll before Running); ``seconds_per_step`` moves by time as well."""

    steps_per_poll: int = 2
    seconds_per_step: float | None = None
    hang_seconds: float = 10.0
    # CHI@Edge's Zun ([k8s] execute_timeout): an exec answers exit_code null past it. The Docker
    # backing waits this long for real; in memory a slow command (apt-get) "takes" longer.
    exec_timeout_s: float = 5.0
    # In memory, a background job with a slow command finishes this many execs after its start.
    slow_exec_polls: int = 2


CONTAINER_STATES = ("Creating", "Created", "Running")
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


def new_id() -> str:
    return str(uuid.uuid4())


def key_fingerprint(public_key: str) -> str:
    """MD5 colon fingerprint, as Nova reports it and chi.util.sshkey_fingerprint computes it."""
    blob = base64.b64decode(public_key.strip().split()[1])
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


INSTALL_SSHD_RE = re.compile(r"\b(apt(-get)?|apk|dnf|yum)\b.*\bopenssh(-server)?\b")
SSHD_SERVICE_RE = re.compile(r"\b(service ssh[d]? (re)?start|systemctl (re)?start ssh[d]?|/etc/init\.d/ssh[d]? (re)?start)\b")
SSHD_BINARIES = ("sshd", "/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd")


def _starts_sshd(command: str) -> bool:
    """An sshd binary run as a command (not a path such as /run/sshd), or the ssh service."""
    words = re.split(r"[\s;&|'\"()]+", command)
    return any(w in SSHD_BINARIES for w in words) or bool(SSHD_SERVICE_RE.search(command))


PUBKEY_RE = re.compile(r"(ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+(?: [\w.@+-]+)?")


@dataclass
class Tracked:
    """Common to every resource the fake creates on a client's request."""

    id: str
    site: str
    project_id: str
    name: str
    created: float  # fake clock, epoch seconds
    polls: int = 0
    fate: str | None = None  # "error_state" / "never_active" from an injected fault

    def step(self, timing: Timing, now: float) -> int:
        steps = self.polls * timing.steps_per_poll
        if timing.seconds_per_step:
            steps = max(steps, int((now - self.created) / timing.seconds_per_step))
        return steps


@dataclass
class Reservation:
    id: str
    lease_id: str
    resource_type: str
    min: int
    max: int
    resource_properties: str
    hypervisor_properties: str
    allocated: list[Reservable]
    created: float


@dataclass
class Lease(Tracked):
    user_id: str = ""
    start: float = 0.0
    end: float = 0.0
    reservations: list[Reservation] = field(default_factory=list)
    status: str = "PENDING"


@dataclass
class Port(Tracked):
    network_id: str = ""
    subnet_id: str = ""
    ip_address: str = ""
    mac: str = ""
    device_id: str = ""
    device_owner: str = ""


@dataclass
class Server(Tracked):
    image_id: str = ""
    flavor_id: str = ""
    key_name: str = ""
    public_key: str = ""
    reservation_id: str | None = None
    port_id: str = ""
    network_name: str = ""
    host: Reservable | None = None
    status: str = "BUILD"
    fault: str | None = None


@dataclass
class Container(Tracked):
    image: str = ""
    reservation_id: str | None = None
    exposed_ports: dict = field(default_factory=dict)
    device_profiles: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    command: object = None
    port_id: str = ""
    device: Reservable | None = None
    status: str = "Creating"
    status_reason: str | None = None
    packages: set[str] = field(default_factory=set)
    sshd_running: bool = False
    authorized_keys: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    shell: object = None  # zunshell.Shell, in memory; None with the Docker backing
    restarts: int = 0
    pod: str = ""  # with the Docker backing: its loopback "pod address" (see dockerzun)


@dataclass
class FloatingIp(Tracked):
    address: str = ""
    network_id: str = ""
    port_id: str | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass
class Keypair(Tracked):
    public_key: str = ""
    user_id: str = ""


@dataclass
class Network:
    id: str
    name: str
    external: bool
    subnet_id: str
    cidr: str


@dataclass
class Image:
    id: str
    name: str
    created: float


@dataclass
class Flavor:
    id: str
    name: str


@dataclass
class SiteState:
    spec: SiteSpec
    base_url: str  # http://127.a.b.n:5000
    networks: dict[str, Network]
    images: dict[str, Image]
    flavors: dict[str, Flavor]
    fip_pool: list[str]

    @property
    def name(self) -> str:
        return self.spec.name

    def network_named(self, name: str) -> Network:
        return next(n for n in self.networks.values() if n.name == name)


class State:
    KINDS = ("leases", "servers", "containers", "floating_ips", "ports", "keypairs")

    def __init__(self, sites: list[SiteState], ssh: SshHosts, timing: Timing):
        self.lock = threading.RLock()
        self.sites = {s.name: s for s in sites}
        self.ssh = ssh
        self.timing = timing
        self.offset = 0.0
        self.leases: dict[str, Lease] = {}
        self.servers: dict[str, Server] = {}
        self.containers: dict[str, Container] = {}
        self.floating_ips: dict[str, FloatingIp] = {}
        self.ports: dict[str, Port] = {}
        self.keypairs: dict[str, Keypair] = {}
        self._ips = itertools.count(10)
        # Packages a container's package manager cannot find (a broken mirror), for tests.
        self.unavailable_packages: set[str] = set()
        # Set by FakeChameleon when containers are real (tests/fakechi/dockerzun.py).
        self.docker = None
        self.pod_prefix = ""

    # -- clock -------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds

    @staticmethod
    def to_datetime(epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).replace(tzinfo=None)

    # -- lookups -----------------------------------------------------------------------------

    def site(self, name: str) -> SiteState:
        return self.sites[name]

    def mine(self, table: dict, site: str, project_id: str) -> list:
        return [r for r in table.values() if r.site == site and r.project_id == project_id]

    def one(self, table: dict, rid: str, site: str, project_id: str, what: str):
        record = table.get(rid)
        if record is None or record.site != site or record.project_id != project_id:
            raise ApiError(404, f"{what} {rid} could not be found.", "NotFound")
        return record

    # -- leases ------------------------------------------------------------------------------

    def create_lease(self, site: str, project_id: str, user_id: str, name: str, start: float,
                     end: float, requests: list[dict], fates: list[str]) -> Lease:
        with self.lock:
            if any(le.name == name for le in self.mine(self.leases, site, project_id)):
                raise ApiError(409, f"The lease with name: {name} already exists", "LeaseNameAlreadyExists")
            lease = Lease(id=new_id(), site=site, project_id=project_id, name=name,
                          created=self.now(), user_id=user_id, start=start, end=end,
                          fate=_fate(fates))
            for request in requests:
                lease.reservations.append(self._reserve(lease, request))
            self.leases[lease.id] = lease
            return lease

    def _reserve(self, lease: Lease, request: dict) -> Reservation:
        spec = self.site(lease.site).spec
        rtype = request.get("resource_type")
        if rtype != spec.reservable_type:
            raise ApiError(400, f"Resource type {rtype} is not supported by the fake at {spec.name} "
                                f"(only {spec.reservable_type})", "MalformedParameter")
        count = int(request.get("min", 1))
        props = request.get("resource_properties") or ""
        matching = [r for r in spec.reservables if _matches(r, props)]
        busy = self._busy(lease.site, lease.start, lease.end, lease)
        free = [r for r in matching if r.id not in busy]
        if len(free) < count:
            raise ApiError(500, "Not enough hosts available", "NotEnoughHostsAvailable")
        return Reservation(id=new_id(), lease_id=lease.id, resource_type=rtype, min=count,
                           max=int(request.get("max", count)), resource_properties=props,
                           hypervisor_properties=request.get("hypervisor_properties", ""),
                           allocated=free[:count], created=self.now())

    def _busy(self, site: str, start: float, end: float, besides: Lease) -> set[str]:
        """Ids of the hosts or devices other live leases hold at some time in [start, end)."""
        return {r.id for other in self.leases.values() if other.site == site and other is not besides
                and other.status not in ("TERMINATED", "ERROR") and other.start < end
                and start < other.end for res in other.reservations for r in res.allocated}

    def update_lease(self, lease: Lease, values: dict) -> Lease:
        """Blazar's ``update_lease`` (manager service) for new dates, with the physical-host and
        device plugins' ``_update_allocations``: each date check of
        ``_check_for_invalid_date_inputs`` in its order; then every host the lease holds must be
        free over the new window. A host reserved by another lease in the added time cannot stay:
        an ACTIVE reservation cannot lose a host, so the update fails with
        NotEnoughHostsAvailable; a PENDING one gets another free matching host, or fails the
        same way. A refused update changes nothing (Blazar lists these errors as non-fatal: the
        lease goes back to its status as it was)."""
        unknown = sorted(set(values) - {"name", "start_date", "end_date", "before_end_date",
                                        "reservations"})
        if unknown:
            raise ApiError(400, f"Invalid input for field/attribute {unknown[0]}", "InvalidInput")
        with self.lock:
            self.observe_lease(lease, poll=False)
            if set(values) <= {"name"}:
                lease.name = values.get("name") or lease.name
                return lease
            # Blazar cuts "now" to the minute, as it cuts the start of a lease made "now"; the
            # fake keeps such starts to the second, so its "now" stays uncut to compare alike.
            now = self.now()
            start = _update_date(values.get("start_date"), lease.start, now)
            end = _update_date(values.get("end_date"), lease.end, now)
            if lease.start < now and start != lease.start:
                raise ApiError(400, "Cannot modify the start date of already started leases",
                               "InvalidInput")
            if lease.start > now and start < now:
                raise ApiError(400, "Start date must be later than current date", "InvalidInput")
            if lease.end < now:
                raise ApiError(400, "Terminated leases can only be renamed", "InvalidInput")
            if end < now or end < start:
                raise ApiError(400, "End date must be later than current and start date",
                               "InvalidInput")
            busy = self._busy(lease.site, start, end, lease)
            spec = self.site(lease.site).spec
            moves = []
            for res in lease.reservations:
                for host in [h for h in res.allocated if h.id in busy]:
                    taken = busy | {h.id for h in res.allocated} | {m[2].id for m in moves}
                    spare = [r for r in spec.reservables if r.id not in taken
                             and _matches(r, res.resource_properties)]
                    if lease.status == "ACTIVE" or not spare:
                        raise ApiError(500, "Not enough hosts available", "NotEnoughHostsAvailable")
                    moves.append((res, host, spare[0]))
            for res, host, spare in moves:
                res.allocated[res.allocated.index(host)] = spare
            lease.start, lease.end = start, end
            if values.get("name"):
                lease.name = values["name"]
            return lease

    def observe_lease(self, lease: Lease, poll: bool) -> Lease:
        """Move ``lease`` to the state it has by now; ``poll`` counts a GET of it."""
        with self.lock:
            if poll:
                lease.polls += 1
            now = self.now()
            if lease.status in ("TERMINATED", "ERROR"):
                return lease
            if now >= lease.end:
                self._end_lease(lease, "TERMINATED")
            elif lease.fate == "error_state" and lease.step(self.timing, now) >= 1:
                lease.status = "ERROR"
            elif (lease.fate != "never_active" and now >= lease.start
                  and lease.step(self.timing, now) >= 1):
                lease.status = "ACTIVE"
            return lease

    def delete_lease(self, lease: Lease) -> None:
        with self.lock:
            self._end_lease(lease, "TERMINATED")
            del self.leases[lease.id]

    def _end_lease(self, lease: Lease, status: str) -> None:
        """Blazar's on-end: the instances on the lease's reservations are deleted with it (their
        floating IPs stay allocated to the project, as on Chameleon)."""
        lease.status = status
        ids = {r.id for r in lease.reservations}
        for server in [s for s in self.servers.values() if s.reservation_id in ids]:
            self.delete_server(server)
        for container in [c for c in self.containers.values() if c.reservation_id in ids]:
            self.delete_container(container)

    def reservation(self, site: str, project_id: str, reservation_id: str | None):
        for lease in self.mine(self.leases, site, project_id):
            for res in lease.reservations:
                if res.id == reservation_id:
                    return lease, res
        return None, None

    # -- ports -------------------------------------------------------------------------------

    def create_port(self, site: str, project_id: str, network: Network, device_id: str,
                    device_owner: str, name: str = "") -> Port:
        with self.lock:
            net = ipaddress.ip_network(network.cidr)
            ip = str(net.network_address + next(self._ips))
            port = Port(id=new_id(), site=site, project_id=project_id, name=name,
                        created=self.now(), network_id=network.id, subnet_id=network.subnet_id,
                        ip_address=ip, mac="fa:16:3e:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3]),
                        device_id=device_id, device_owner=device_owner)
            self.ports[port.id] = port
            return port

    def delete_port(self, port: Port) -> None:
        with self.lock:
            for fip in self.floating_ips.values():
                if fip.port_id == port.id:
                    self._unbind(fip)
            self.ports.pop(port.id, None)

    # -- servers -----------------------------------------------------------------------------

    def create_server(self, site: str, project_id: str, name: str, image_id: str, flavor_id: str,
                      keypair: Keypair | None, network: Network, reservation_id: str | None,
                      fates: list[str]) -> Server:
        with self.lock:
            server = Server(id=new_id(), site=site, project_id=project_id, name=name,
                            created=self.now(), image_id=image_id, flavor_id=flavor_id,
                            key_name=keypair.name if keypair else "",
                            public_key=keypair.public_key if keypair else "",
                            reservation_id=reservation_id, network_name=network.name,
                            fate=_fate(fates))
            port = self.create_port(site, project_id, network, server.id, "compute:nova")
            server.port_id = port.id
            lease, res = self.reservation(site, project_id, reservation_id)
            in_use = {s.host.id for s in self.servers.values()
                      if s.reservation_id == reservation_id and s.host}
            free = [h for h in (res.allocated if res else []) if h.id not in in_use]
            if lease is None or self.observe_lease(lease, poll=False).status != "ACTIVE" or not free:
                server.fate, server.fault = "error_state", NO_VALID_HOST
            else:
                server.host = free[0]
            self.servers[server.id] = server
            return server

    def observe_server(self, server: Server, poll: bool) -> Server:
        with self.lock:
            if poll:
                server.polls += 1
            if server.status == "ERROR" or server.step(self.timing, self.now()) < 1:
                return server
            if server.fate == "error_state":  # at build, or later (a node failing under it)
                server.status = "ERROR"
                server.fault = server.fault or "Instance failed (injected fault)"
            else:
                server.status = "ACTIVE"
            self._sync_ssh_for_port(server.port_id)
            return server

    def delete_server(self, server: Server) -> None:
        with self.lock:
            port = self.ports.get(server.port_id)
            if port:
                self.delete_port(port)
            self.servers.pop(server.id, None)

    # -- containers --------------------------------------------------------------------------

    def create_container(self, site: str, project_id: str, body: dict, network: Network,
                         fates: list[str]) -> Container:
        with self.lock:
            hints = body.get("hints") or {}
            container = Container(
                id=new_id(), site=site, project_id=project_id, name=body.get("name") or "",
                created=self.now(), image=body.get("image", ""),
                reservation_id=hints.get("reservation"),
                exposed_ports=body.get("exposed_ports") or {},
                device_profiles=body.get("device_profiles") or [],
                environment=body.get("environment") or {}, command=body.get("command"),
                fate=_fate(fates),
            )
            port = self.create_port(site, project_id, network, container.id, "compute:kuryr")
            container.port_id = port.id
            lease, res = self.reservation(site, project_id, container.reservation_id)
            if lease is None or self.observe_lease(lease, poll=False).status != "ACTIVE":
                container.fate, container.status_reason = "error_state", NO_VALID_HOST
            else:
                container.device = res.allocated[0]
                if self.docker is not None:
                    self._start_pod(container)
            self.containers[container.id] = container
            return container

    def _start_pod(self, container: Container) -> None:
        if not container.pod:
            taken = {c.pod for c in self.containers.values()}
            container.pod = next(a for a in (f"{self.pod_prefix}.{n}" for n in range(220, 255))
                                 if a not in taken)
        reason = self.docker.start(container.id, container.image, container.command,
                                   container.pod, self.ssh.port)
        if reason:
            container.fate, container.status_reason = "error_state", reason

    def observe_container(self, container: Container, poll: bool) -> Container:
        with self.lock:
            if poll:
                container.polls += 1
            steps = container.step(self.timing, self.now())
            if container.status == "Error" or steps < 1:
                return container
            if container.fate == "error_state":
                container.status = "Error"
                container.status_reason = container.status_reason or \
                    "Docker internal error: 500 Server Error (injected fault)"
            else:
                container.status = CONTAINER_STATES[min(steps, len(CONTAINER_STATES) - 1)]
            self._sync_ssh_for_port(container.port_id)
            return container

    def delete_container(self, container: Container) -> None:
        with self.lock:
            port = self.ports.get(container.port_id)
            if port:
                self.delete_port(port)
            self.containers.pop(container.id, None)
            if self.docker is not None:
                self.docker.remove(container.id)

    def execute(self, container: Container, command: str) -> tuple[str, int | None]:
        """Zun ``execute`` through the container's small shell (``zunshell``): (output, exit
        code), the code None when the command runs past Zun's execute timeout."""
        with self.lock:
            container.executed.append(command)
            if self.docker is not None:
                return self.docker.execute(container.id, command, self.timing.exec_timeout_s)
            if container.shell is None:
                container.shell = Shell(_Effects(self, container))
            outcome = container.shell.execute(command, self.timing.slow_exec_polls)
            return outcome.output, (None if outcome.slow else outcome.code)

    def restart_container(self, container: Container) -> None:
        """A pod restart: same container, port and address, a fresh file system, no sshd."""
        with self.lock:
            container.restarts += 1
            container.packages.clear()
            container.files.clear()
            container.authorized_keys.clear()
            container.sshd_running = False
            if container.shell is not None:
                container.shell.reset()
            if self.docker is not None:
                self.docker.remove(container.id)
                self._start_pod(container)
            self._sync_ssh_for_port(container.port_id)

    def _authorize_from_command(self, container: Container, command: str) -> None:
        """``echo <key> >> .../authorized_keys``, or ``cat <uploaded file> >> ...``."""
        keys = [m.group(0) for m in PUBKEY_RE.finditer(command)]
        for path, content in container.files.items():
            if path in command:
                keys += [m.group(0) for m in PUBKEY_RE.finditer(content.decode(errors="replace"))]
        self._add_container_keys(container, keys)

    def put_archive(self, container: Container, path: str, members: dict[str, bytes]) -> None:
        """Zun ``put_archive``: files land in the container; an ``authorized_keys`` authorizes."""
        with self.lock:
            if self.docker is not None:
                self.docker.put(container.id, path, members)
                return
            for name, content in members.items():
                full = f"{path.rstrip('/')}/{name}"
                container.files[full] = content
                if name.rsplit("/", 1)[-1] == "authorized_keys" or path.rstrip("/").endswith("authorized_keys"):
                    text = content.decode(errors="replace")
                    self._add_container_keys(container, [m.group(0) for m in PUBKEY_RE.finditer(text)])

    def _add_container_keys(self, container: Container, keys: list[str]) -> None:
        for key in keys:
            if key not in container.authorized_keys:
                container.authorized_keys.append(key)
        self._sync_ssh_for_port(container.port_id)

    # -- floating IPs ------------------------------------------------------------------------

    def allocate_fip(self, site: str, project_id: str, network: Network, description: str,
                     address: str | None) -> FloatingIp:
        with self.lock:
            pool = self.site(site).fip_pool
            taken = {f.address for f in self.floating_ips.values()}
            candidates = [address] if address else [a for a in pool if a not in taken]
            chosen = next((a for a in candidates if a in pool and a not in taken
                           and port_free(a, self.ssh.port)), None)
            if chosen is None:
                raise ApiError(409, f"No more IP addresses available on network {network.id}.",
                               "IpAddressGenerationFailure")
            fip = FloatingIp(id=new_id(), site=site, project_id=project_id, name="",
                             created=self.now(), address=chosen, network_id=network.id,
                             description=description)
            self.floating_ips[fip.id] = fip
            return fip

    def bind_fip(self, fip: FloatingIp, port_id: str | None) -> None:
        with self.lock:
            if port_id is None:
                self._unbind(fip)
                return
            port = self.ports.get(port_id)
            if port is None or port.site != fip.site or port.project_id != fip.project_id:
                raise ApiError(404, f"Port {port_id} could not be found.", "PortNotFound")
            if fip.port_id and fip.port_id != port_id:
                self._unbind(fip)
            fip.port_id = port_id
            self._sync_ssh_for_port(port_id)

    def _unbind(self, fip: FloatingIp) -> None:
        fip.port_id = None
        self.ssh.down(fip.address)

    def release_fip(self, fip: FloatingIp) -> None:
        with self.lock:
            self._unbind(fip)
            del self.floating_ips[fip.id]

    def fips_on_port(self, port_id: str) -> list[FloatingIp]:
        return [f for f in self.floating_ips.values() if f.port_id == port_id]

    def _sync_ssh_for_port(self, port_id: str) -> None:
        """Run an sshd on each floating IP of ``port_id`` when what is behind it answers SSH."""
        port = self.ports.get(port_id)
        if port is None:
            return
        keys: list[str] = []
        server = self.servers.get(port.device_id)
        container = self.containers.get(port.device_id)
        if server and server.status == "ACTIVE" and server.public_key:
            keys = [server.public_key]
        elif container and container.status == "Running" and container.sshd_running \
                and _exposes_ssh(container.exposed_ports):
            keys = list(container.authorized_keys)
        elif container and container.pod:
            # A real container: the floating IP reaches its pod address whatever runs there.
            for fip in self.fips_on_port(port_id):
                if container.status == "Running" and _exposes_ssh(container.exposed_ports):
                    self.ssh.relay(fip.address, (container.pod, self.ssh.port))
                else:
                    self.ssh.down(fip.address)
            return
        for fip in self.fips_on_port(port_id):
            if keys:
                self.ssh.up(fip.address, keys)
            else:
                self.ssh.down(fip.address)

    # -- keypairs ----------------------------------------------------------------------------

    def create_keypair(self, site: str, project_id: str, user_id: str, name: str,
                       public_key: str) -> Keypair:
        with self.lock:
            if self.keypair(site, user_id, name):
                raise ApiError(409, f"Key pair '{name}' already exists.", "Conflict")
            kp = Keypair(id=new_id(), site=site, project_id=project_id, name=name,
                         created=self.now(), public_key=public_key.strip(), user_id=user_id)
            self.keypairs[kp.id] = kp
            return kp

    def keypair(self, site: str, user_id: str, name: str) -> Keypair | None:
        return next((k for k in self.keypairs.values()
                     if k.site == site and k.user_id == user_id and k.name == name), None)

    # -- leak accounting ---------------------------------------------------------------------

    def live(self) -> dict[str, list[dict]]:
        with self.lock:
            return {
                "leases": [{"id": r.id, "name": r.name, "site": r.site,
                            "status": self.observe_lease(r, poll=False).status}
                           for r in self.leases.values()],
                "servers": [{"id": r.id, "name": r.name, "site": r.site, "status": r.status}
                            for r in self.servers.values()],
                "containers": [{"id": r.id, "name": r.name, "site": r.site, "status": r.status}
                               for r in self.containers.values()],
                "floating_ips": [{"id": r.id, "address": r.address, "site": r.site,
                                  "port_id": r.port_id} for r in self.floating_ips.values()],
                "ports": [{"id": r.id, "site": r.site, "device_id": r.device_id,
                           "device_owner": r.device_owner} for r in self.ports.values()],
                "keypairs": [{"id": r.id, "name": r.name, "site": r.site}
                             for r in self.keypairs.values()],
            }


class _Effects:
    """What a command in an in-memory container changes (see ``zunshell.Shell``)."""

    def __init__(self, state: State, container: Container):
        self.state, self.container = state, container

    @property
    def files(self) -> dict[str, bytes]:
        return self.container.files

    def package_command(self, command: str) -> tuple[str, int]:
        missing = [p for p in self.state.unavailable_packages if " install " in f" {command} "
                   and re.search(rf"\b{re.escape(p)}\b", command)]
        if missing:
            return f"E: Unable to locate package {missing[0]}\n", 100
        if INSTALL_SSHD_RE.search(command):
            self.container.packages.add("openssh-server")
        return "", 0

    @staticmethod
    def starts_sshd(command: str) -> bool:
        return _starts_sshd(command)

    def start_sshd(self) -> tuple[str, int]:
        if "openssh-server" not in self.container.packages:
            return "sh: 1: sshd: not found\n", 127
        self.container.sshd_running = True
        self.state._sync_ssh_for_port(self.container.port_id)
        return "", 0

    def wrote(self, path: str) -> None:
        if path.endswith("/authorized_keys"):
            text = self.container.files[path].decode(errors="replace")
            self.state._add_container_keys(self.container, [m.group(0) for m in PUBKEY_RE.finditer(text)])

    def other_command(self, command: str) -> None:
        if "authorized_keys" in command:
            self.state._authorize_from_command(self.container, command)


def _exposes_ssh(exposed_ports: dict) -> bool:
    return any(str(p).split("/")[0] == "22" for p in exposed_ports)


def _fate(fates: list[str]) -> str | None:
    return fates[-1] if fates else None


def _matches(reservable: Reservable, resource_properties: str) -> bool:
    """Evaluate Blazar's JSON filter ``["==", "$node_type", "x"]`` / ``["and", f1, f2]``."""
    if not resource_properties:
        return True
    try:
        expr = json.loads(resource_properties)
    except ValueError:
        raise ApiError(400, f"Malformed parameter resource_properties: {resource_properties}",
                       "MalformedParameter")
    return _evaluate(reservable, expr)


def _evaluate(reservable: Reservable, expr) -> bool:
    if not expr:
        return True
    op = expr[0]
    if op == "and":
        return all(_evaluate(reservable, sub) for sub in expr[1:])
    if op == "or":
        return any(_evaluate(reservable, sub) for sub in expr[1:])
    if op in ("==", "!=") and len(expr) == 3 and str(expr[1]).startswith("$"):
        value = reservable.properties.get(expr[1][1:])
        if expr[1] == "$uid":
            value = reservable.uid
        return (str(value) == str(expr[2])) == (op == "==")
    raise ApiError(400, f"Malformed parameter resource_properties: {json.dumps(expr)}",
                   "MalformedParameter")


def _update_date(value, current: float, now: float) -> float:
    """A date of a lease update: absent keeps ``current``; Blazar's manager parses "now" or
    "%Y-%m-%d %H:%M" (UTC) and nothing else (InvalidDate)."""
    if value is None:
        return current
    if value == "now":
        return now
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ApiError(400, f"{value} is an invalid date. Required format: %Y-%m-%d %H:%M",
                       "InvalidDate") from None


def lease_dates(start: str, end: str, now: float) -> tuple[float, float]:
    """Blazar's accepted forms: "now" or "%Y-%m-%d %H:%M" (UTC)."""
    def parse(text: str) -> float:
        if text == "now":
            return now
        for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                continue
        raise ApiError(400, f"Malformed parameter date: {text}", "MalformedParameter")

    start_at, end_at = parse(start), parse(end)
    # Blazar rounds "now" leases down to the minute and accepts starts up to a minute back.
    if start != "now" and start_at < now - 120:
        raise ApiError(400, "Start date must be later than current date", "InvalidInput")
    if end_at <= start_at:
        raise ApiError(400, "End date must be later than start date", "InvalidInput")
    return start_at, end_at
