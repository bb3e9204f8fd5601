"""``FakeChameleon``: three sites' Keystone, Blazar, Nova, Neutron, Glance and Zun on loopback.

Addresses: python-chi's ``use_site`` sets ``auth_url`` to ``<site web>:5000/v3``, so each site
gets a loopback address of its own, port 5000: CHI@TACC, CHI@UC and CHI@Edge at 127.A.B.1, .2
and .3 with A.B random per fake (so fakes of tests running side by side do not meet), their
``web`` being ``http://127.A.B.n``. Floating IPs come from 127.A.B.100-219, and a real sshd
listens on port 22 of each one that sits on an ACTIVE server, or on a container that started
its sshd. Nothing here ever listens on or talks to an address outside 127.0.0.0/8.
"""

from __future__ import annotations

import getpass
import ipaddress
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.support.sshd import make_keypair

from . import blazar, glance, keystone, neutron, nova, oidc, zun
from .dockerzun import DockerZun
from .faults import FaultBook, Injection
from .http import RequestRecord, Router, SiteHandler, Stopping
from .sites import PUBLIC_NETWORK, SiteSpec, default_sites
from .sshhosts import SshHosts, choose_port
from .state import Flavor, Image, Network, SiteState, State, Timing, new_id

KEYSTONE_PORT = 5000
FIP_BLOCK = 40  # floating IPs per site
ROUTER = Router([keystone.IDENTITY, nova.NOVA, neutron.NEUTRON, glance.GLANCE, blazar.BLAZAR,
                 zun.ZUN, oidc.KEYCLOAK, keystone.RESOURCES])


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, fake: "FakeChameleon", site: str):
        self.fake = fake
        self.site = site
        super().__init__((address, KEYSTONE_PORT), SiteHandler)

    def handle_error(self, request, client_address) -> None:
        """A client that gave up on a hanging request (its deadline) closed the connection before
        the answer: expected, not worth a traceback on stderr (which a CliRunner captures)."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeChameleon:
    """A fake Chameleon for the real python-chi. ``start()`` it, point python-chi at ``env``
    (see ``tests/fakechi/fixtures.py``), ``stop()`` it. ``timing`` may be changed at any time."""

    def __init__(self, root: Path | None = None, project_name: str = "CHI-251234",
                 timing: Timing | None = None, sites: list[SiteSpec] | None = None,
                 docker_zun: DockerZun | None = None):
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="fakechi-"))
        self.timing = timing or Timing()
        self.identity = keystone.Identity.make(project_name)
        self.keystone_tokens = keystone.Tokens()
        self.oidc_tokens = oidc.AccessTokens()
        self.faults = FaultBook(self.timing.hang_seconds)
        self.router = ROUTER
        self.stopping = Stopping()
        self.ssh = SshHosts(self.root / "sshd")
        self.ssh_user = getpass.getuser()
        self._specs = sites or default_sites()
        self._servers: list[_SiteServer] = []
        self._threads: list[threading.Thread] = []
        self._requests: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self.internal_errors: list[str] = []  # tracebacks of the fake's own bugs, if any
        self.state: State | None = None
        self.docker_zun = docker_zun  # real containers behind Zun (tests/fakechi/dockerzun.py)
        self.prefix = ""  # "127.A.B", once started

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeChameleon":
        self.root.mkdir(parents=True, exist_ok=True)
        self._bind()
        self.ssh.port = choose_port(f"{self.prefix}.100")
        self.state = State([self._site_state(i, spec) for i, spec in enumerate(self._specs)],
                           self.ssh, self.timing)
        if self.docker_zun is not None:
            self.docker_zun.workdir = self.root
            self.state.docker, self.state.pod_prefix = self.docker_zun, self.prefix
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                      name=f"fakechi-{server.site}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _bind(self) -> None:
        """Take port 5000 on three addresses of a random 127.A.B.0/24 that nobody else holds."""
        rng = random.Random()
        for _ in range(50):
            prefix = f"127.{rng.randint(64, 250)}.{rng.randint(0, 255)}"
            servers: list[_SiteServer] = []
            try:
                for i, spec in enumerate(self._specs, start=1):
                    servers.append(_SiteServer(f"{prefix}.{i}", self, spec.name))
            except OSError:
                for s in servers:
                    s.server_close()
                continue
            self.prefix, self._servers = prefix, servers
            return
        raise RuntimeError("no free 127.x.y.0/24 with port 5000 free on three addresses")

    def _site_state(self, index: int, spec: SiteSpec) -> SiteState:
        tenant = Network(new_id(), spec.tenant_network, False, new_id(), spec.tenant_cidr)
        public = Network(new_id(), PUBLIC_NETWORK, True, new_id(), f"{self.prefix}.0/24")
        first = 100 + index * FIP_BLOCK
        pool = [f"{self.prefix}.{n}" for n in range(first, first + FIP_BLOCK)]
        images = [Image(new_id(), name, time.time() - 86400) for name in spec.images]
        flavors = [Flavor(new_id(), name) for name in spec.flavors]
        return SiteState(spec=spec, base_url=f"{self.site_web(spec.name)}:{KEYSTONE_PORT}",
                         networks={n.id: n for n in (tenant, public)},
                         images={i.id: i for i in images}, flavors={f.id: f for f in flavors},
                         fip_pool=pool)

    def stop(self) -> None:
        """Stop serving (releasing any hanging request) and stop every sshd the fake started."""
        if self.stopping.event.is_set():
            return
        self.stopping.event.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        self.ssh.stop_all()
        if self.docker_zun is not None:
            self.docker_zun.stop_all()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "FakeChameleon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses and credentials -----------------------------------------------------------

    def site_web(self, site: str) -> str:
        """The site's ``web`` in sites.json: python-chi appends ``:5000/v3`` to it."""
        index = [s.name for s in self._specs].index(site) + 1
        return f"http://{self.prefix}.{index}"

    def site_url(self, site: str) -> str:
        return f"{self.site_web(site)}:{KEYSTONE_PORT}"

    @property
    def url(self) -> str:
        """The resource API root (``CHI_RESOURCE_API_URL``): serves ``/sites.json``."""
        return self.site_url(self._specs[0].name)

    @property
    def edge_devices_url(self) -> str:
        """The edge hardware discovery list (``EDGE_RESOURCE_API_URL``)."""
        return f"{self.url}/edge-hw-discovery/devices"

    @property
    def sites(self) -> dict[str, str]:
        """Site name -> its Keystone ``auth_url``."""
        return {s.name: f"{self.site_url(s.name)}/v3" for s in self._specs}

    @property
    def env(self) -> dict[str, str]:
        """Application-credential ``OS_*`` settings for CHI@TACC, and ``CHI_RESOURCE_API_URL``."""
        return {
            "OS_AUTH_URL": self.sites[self._specs[0].name],
            "OS_AUTH_TYPE": "v3applicationcredential",
            "OS_APPLICATION_CREDENTIAL_ID": self.identity.app_cred_id,
            "OS_APPLICATION_CREDENTIAL_SECRET": self.identity.app_cred_secret,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_INTERFACE": "public",
            "OS_REGION_NAME": self._specs[0].name,
            "OS_PROJECT_NAME": self.identity.project_name,
            "CHI_RESOURCE_API_URL": self.url,
            "EDGE_RESOURCE_API_URL": self.edge_devices_url,
        }

    @property
    def password_env(self) -> dict[str, str]:
        """The same as ``env``, with an openrc-style password login instead."""
        env = {k: v for k, v in self.env.items() if not k.startswith("OS_APPLICATION_CREDENTIAL")}
        env.update({"OS_AUTH_TYPE": "v3password", "OS_USERNAME": self.identity.user_name,
                    "OS_PASSWORD": self.identity.password, "OS_USER_DOMAIN_NAME": "chameleon",
                    "OS_PROJECT_DOMAIN_NAME": "chameleon"})
        return env

    @property
    def oidc_env(self) -> dict[str, str]:
        """The same as ``env``, logging in as Chameleon's own openrc does (``v3oidcpassword``
        through Keycloak and Keystone federation)."""
        env = {k: v for k, v in self.env.items() if not k.startswith("OS_APPLICATION_CREDENTIAL")}
        ident = self.identity
        env.update({"OS_AUTH_TYPE": "v3oidcpassword", "OS_USERNAME": ident.user_name,
                    "OS_PASSWORD": ident.password, "OS_IDENTITY_PROVIDER": ident.identity_provider,
                    "OS_PROTOCOL": ident.protocol, "OS_CLIENT_ID": ident.oidc_client_id,
                    "OS_CLIENT_SECRET": ident.oidc_client_secret,
                    "OS_DISCOVERY_ENDPOINT": oidc.discovery_url(self),
                    "OS_ACCESS_TOKEN_TYPE": "access_token", "OS_PROJECT_DOMAIN_NAME": "chameleon"})
        return env

    @property
    def secrets(self) -> list[str]:
        """Every secret the fake accepted or issued: password, application-credential secret,
        tokens. Grep outputs, logs and files for these."""
        return [self.identity.password, self.identity.app_cred_secret,
                self.identity.oidc_client_secret, *self.keystone_tokens.issued(),
                *self.oidc_tokens.issued()]

    @property
    def ssh_key(self) -> Path:
        """A client key pair made for this fake (``ssh_key`` and ``ssh_key.pub``), for tests."""
        return make_keypair(self.root / "client_ed25519")

    # -- faults, clock, log ------------------------------------------------------------------

    def inject(self, method: str, path_regex: str, fault, times: int | None = 1,
               seconds: float | None = None, site: str | None = None) -> Injection:
        """Make the next ``times`` requests (None: all) whose method is ``method`` ("*": any) and
        whose path ``re.search``-matches ``path_regex`` (e.g. ``r"/leases$"``) meet ``fault``;
        see ``tests/fakechi/faults.py``. The returned Injection counts its ``hits``."""
        self.faults.default_hang_seconds = self.timing.hang_seconds
        return self.faults.add(method, path_regex, fault, times=times, seconds=seconds, site=site)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock: a future lease starts, a lease reaches its end."""
        self.state.advance(seconds)

    def log_request(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far: site, method, path, query, status, service. No body, no header."""
        with self._log_lock:
            return list(self._requests)

    def requests_to(self, method: str, path_regex: str) -> list[RequestRecord]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    # -- what exists -------------------------------------------------------------------------

    def live_resources(self) -> dict[str, list[dict]]:
        """kind -> what still exists: leases (not deleted, whatever their status), servers,
        containers, floating_ips (allocated), ports, keypairs."""
        return self.state.live()

    def leaked(self) -> dict[str, list[dict]]:
        """The kinds that still hold something, keypairs aside (a keypair is the user's and
        outlives a run): ``assert not fake.leaked()`` after a teardown."""
        return {k: v for k, v in self.live_resources().items() if v and k != "keypairs"}

    @property
    def ssh_port(self) -> int:
        """Where the floating IPs' sshds listen: 22, unless the machine's own sshd holds it."""
        return self.ssh.port

    def ssh_addresses(self) -> list[str]:
        """Floating IPs where an sshd answers on port 22 now."""
        return self.ssh.addresses()

    def fip_pool_contains(self, address: str) -> bool:
        return ipaddress.ip_address(address) in ipaddress.ip_network(f"{self.prefix}.0/24")

