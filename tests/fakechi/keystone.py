"""Keystone v3 as keystoneauth1 uses it: password and application-credential tokens with a
service catalog, version discovery, project look-ups; plus what python-chi reads from the
resource API (``sites.json``, a site's node list) and from the edge hardware discovery API.

Each site has a Keystone of its own (python-chi's ``use_site`` points ``auth_url`` at
``<site web>:5000/v3``) whose catalog lists that region only; a token is honoured at every site,
as Chameleon's federated identity does.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .http import ApiError, Call, Reply, Service

IDENTITY = Service("identity", "/v3")
RESOURCES = Service("resources", "")
TOKEN_LIFETIME_S = 3600

# (service type, service name, path under the site's base URL)
CATALOG = (
    ("identity", "keystone", "/v3"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("reservation", "blazar", "/reservation/v1"),
    ("container", "zun", "/container/v1"),
)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@dataclass(frozen=True)
class Identity:
    """The one user, project and application credential the fake knows."""

    user_id: str
    user_name: str
    password: str
    project_id: str
    project_name: str
    app_cred_id: str
    app_cred_secret: str
    oidc_client_secret: str
    domain_name: str = "chameleon"
    # Chameleon's openrc: its Keycloak ("chameleon" realm) federated to Keystone over OpenID.
    oidc_client_id: str = "keystone-fake-prod"
    identity_provider: str = "chameleon"
    protocol: str = "openid"

    @classmethod
    def make(cls, project_name: str) -> "Identity":
        return cls(user_id=secrets.token_hex(16), user_name="servebench-tester",
                   password="pw-" + secrets.token_urlsafe(18), project_id=secrets.token_hex(16),
                   project_name=project_name, app_cred_id=secrets.token_hex(16),
                   app_cred_secret="acs-" + secrets.token_urlsafe(24),
                   oidc_client_secret="ocs-" + secrets.token_urlsafe(24))


class Tokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, dict] = {}

    def issue(self, identity: Identity, methods: list[str], scoped: bool = True) -> tuple[str, dict]:
        token = "gAAAAA" + secrets.token_urlsafe(48)
        record = {"user_id": identity.user_id,
                  "project_id": identity.project_id if scoped else None,
                  "methods": methods, "issued": time.time(),
                  "expires": time.time() + TOKEN_LIFETIME_S}
        with self._lock:
            self._tokens[token] = record
        return token, record

    def check(self, token: str | None) -> dict:
        with self._lock:
            record = self._tokens.get(token or "")
        if record is None or record["expires"] < time.time():
            raise ApiError(401, "The request you have made requires authentication.", "Unauthorized")
        return record

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._tokens)


def _authenticate(call: Call) -> list[str]:
    """Check the credentials in a POST /v3/auth/tokens body; the methods that were used."""
    identity: Identity = call.fake.identity
    auth = (call.body or {}).get("auth") or {}
    ident = auth.get("identity") or {}
    methods = ident.get("methods") or []
    unauthorized = ApiError(401, "The request you have made requires authentication.", "Unauthorized")
    if "application_credential" in methods:
        cred = ident.get("application_credential") or {}
        if cred.get("id") != identity.app_cred_id or cred.get("secret") != identity.app_cred_secret:
            raise unauthorized
    elif "password" in methods:
        user = (ident.get("password") or {}).get("user") or {}
        if user.get("name") not in (identity.user_name, None) and user.get("id") != identity.user_id:
            raise unauthorized
        if user.get("password") != identity.password:
            raise unauthorized
        project = ((auth.get("scope") or {}).get("project")) or {}
        if project and project.get("name", identity.project_name) != identity.project_name \
                and project.get("id") != identity.project_id:
            raise unauthorized
    elif "token" in methods:
        call.fake.keystone_tokens.check((ident.get("token") or {}).get("id"))
    else:
        raise unauthorized
    return methods


def catalog(fake, site: str) -> list[dict]:
    base = fake.site_url(site)
    return [{
        "id": f"{stype}-{site}", "type": stype, "name": name,
        "endpoints": [{"id": f"{stype}-{site}-public", "interface": "public", "region": site,
                       "region_id": site, "url": base + path}],
    } for stype, name, path in CATALOG]


@IDENTITY.route("POST", "/auth/tokens", authenticated=False)
def issue_token(call: Call) -> Reply:
    methods = _authenticate(call)
    identity: Identity = call.fake.identity
    token, record = call.fake.keystone_tokens.issue(identity, methods)
    body = {"token": {
        "methods": methods,
        "user": {"id": identity.user_id, "name": identity.user_name,
                 "domain": {"id": identity.domain_name, "name": identity.domain_name},
                 "password_expires_at": None},
        "audit_ids": [secrets.token_urlsafe(16)],
        "expires_at": _iso(record["expires"]), "issued_at": _iso(record["issued"]),
        "project": {"id": identity.project_id, "name": identity.project_name,
                    "domain": {"id": identity.domain_name, "name": identity.domain_name}},
        "is_domain": False,
        "roles": [{"id": "member-role", "name": "member"}, {"id": "reader-role", "name": "reader"}],
        "catalog": catalog(call.fake, call.site),
    }}
    if "application_credential" in methods:
        body["token"]["application_credential"] = {"id": identity.app_cred_id,
                                                   "name": "servebench", "restricted": True}
    return Reply(201, body, {"X-Subject-Token": token})


@IDENTITY.route("GET", "/auth/tokens")
def validate_token(call: Call) -> Reply:
    call.fake.keystone_tokens.check(call.headers.get("x-subject-token"))
    return Reply(200, {"token": {"methods": ["token"], "catalog": catalog(call.fake, call.site)}})


def _project(identity: Identity) -> dict:
    return {"id": identity.project_id, "name": identity.project_name,
            "domain_id": identity.domain_name, "enabled": True, "is_domain": False,
            "parent_id": identity.domain_name, "description": "", "tags": [],
            "links": {"self": f"/v3/projects/{identity.project_id}"}}


@IDENTITY.route("GET", r"/projects/(?P<project_id>[^/]+)")
def show_project(call: Call) -> Reply:
    identity: Identity = call.fake.identity
    if call.params["project_id"] != identity.project_id:
        raise ApiError(404, f"Could not find project: {call.params['project_id']}.", "Not Found")
    return Reply(200, {"project": _project(identity)})


@IDENTITY.route("GET", r"/(?:users/[^/]+|auth)/projects")
def list_projects(call: Call) -> Reply:
    return Reply(200, {"projects": [_project(call.fake.identity)], "links": {"next": None}})


def _version(base: str) -> dict:
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


@IDENTITY.route("GET", "", authenticated=False)
def identity_version(call: Call) -> Reply:
    return Reply(200, {"version": _version(call.fake.site_url(call.site))})


@RESOURCES.route("GET", "/", authenticated=False)
def identity_versions(call: Call) -> Reply:
    return Reply(300, {"versions": {"values": [_version(call.fake.site_url(call.site))]}})


@RESOURCES.route("GET", "/sites.json", authenticated=False)
def sites_json(call: Call) -> Reply:
    """The resource API's site list, as ``chi.context.list_sites`` reads it."""
    items = [{"name": s.name, "uid": s.spec.uid, "web": call.fake.site_web(s.name),
              "location": s.spec.location, "user_support_contact": "help@chameleoncloud.org",
              "site_class": "core" if s.spec.uid != "edge" else "edge",
              "description": f"fake {s.name}"}
             for s in call.fake.state.sites.values()]
    return Reply(200, {"items": items})


@RESOURCES.route("GET", r"/sites/(?P<uid>[^/]+)/clusters/chameleon/nodes\.json", authenticated=False)
def site_nodes(call: Call) -> Reply:
    """The reference API's node list, as ``chi.hardware.get_nodes`` reads it."""
    site = next((s for s in call.fake.state.sites.values() if s.spec.uid == call.params["uid"]), None)
    if site is None or site.spec.reservable_type != "physical:host":
        raise ApiError(404, f"No site {call.params['uid']}", "Not Found")
    return Reply(200, {"items": [{
        "uid": r.uid, "node_name": r.name, "node_type": r.properties["node_type"],
        "architecture": {"platform_type": "x86_64", "smt_size": 128}, "bios": {},
        "processor": {"model": "AMD EPYC 7763"}, "gpu": {"gpu": True, "gpu_model": "A100"},
        "main_memory": {"ram_size": 274877906944}, "network_adapters": [], "placement": {},
        "storage_devices": [], "version": "1",
    } for r in site.spec.reservables]})


@RESOURCES.route("GET", "/edge-hw-discovery/devices", authenticated=False)
def edge_devices(call: Call) -> Reply:
    """The edge hardware discovery list ``chi.hardware.get_devices`` reads first."""
    edge = [s for s in call.fake.state.sites.values() if s.spec.reservable_type == "device"]
    return Reply(200, [{
        "device_name": r.name, "device_type": r.properties["machine_name"], "uuid": r.uid,
        "supported_device_profiles": ["pi_gpio"], "authorized_projects": ["all"],
        "owning_project": "admin",
    } for site in edge for r in site.spec.reservables])
