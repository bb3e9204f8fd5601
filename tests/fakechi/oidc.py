"""Chameleon's own login (``OS_AUTH_TYPE=v3oidcpassword``), as keystoneauth1's plugin makes it:

1. ``GET`` the OpenID discovery document (``OS_DISCOVERY_ENDPOINT``) for its ``token_endpoint``
   (skipped when ``OS_ACCESS_TOKEN_ENDPOINT`` is given);
2. ``POST`` the token endpoint a form ``grant_type=password&username&password&scope``, the client
   id and secret as HTTP Basic auth (or ``client_id`` in the form when there is no secret): an
   OAuth access token;
3. ``POST /v3/OS-FEDERATION/identity_providers/<idp>/protocols/<protocol>/auth`` with
   ``Authorization: Bearer <access token>``: an unscoped Keystone token;
4. ``POST /v3/auth/tokens`` method ``token`` with the project scope: the scoped token.

Keycloak (``auth.chameleoncloud.org``, realm ``chameleon``) is served here at the first site's
address under ``/auth/realms/chameleon``. Every access token issued is a secret of the fake.
"""

from __future__ import annotations

import base64
import secrets
import threading
from urllib.parse import parse_qsl

from .http import ApiError, Call, Reply, Service
from .keystone import IDENTITY, Identity, _iso

REALM = "/auth/realms/chameleon"
KEYCLOAK = Service("oauth", REALM)
DISCOVERY_PATH = REALM + "/.well-known/openid-configuration"
TOKEN_PATH = REALM + "/protocol/openid-connect/token"


class AccessTokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: set[str] = set()

    def issue(self) -> str:
        token = "eyJ" + secrets.token_urlsafe(60)
        with self._lock:
            self._issued.add(token)
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            return token in self._issued

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)


def discovery_url(fake) -> str:
    return fake.url + DISCOVERY_PATH


@KEYCLOAK.route("GET", "/.well-known/openid-configuration", authenticated=False)
def discovery(call: Call) -> Reply:
    base = call.fake.site_url(call.site) + REALM
    return Reply(200, {"issuer": base, "token_endpoint": base + "/protocol/openid-connect/token",
                       "authorization_endpoint": base + "/protocol/openid-connect/auth",
                       "grant_types_supported": ["authorization_code", "password",
                                                 "client_credentials", "refresh_token"]})


def _client(call: Call, form: dict[str, str]) -> tuple[str | None, str | None]:
    header = call.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id, client_secret
    return form.get("client_id"), form.get("client_secret")


@KEYCLOAK.route("POST", "/protocol/openid-connect/token", authenticated=False)
def token(call: Call) -> Reply:
    identity: Identity = call.fake.identity
    form = dict(parse_qsl(call.raw.decode(errors="replace")))
    client_id, client_secret = _client(call, form)
    if client_id != identity.oidc_client_id or client_secret != identity.oidc_client_secret:
        raise ApiError(401, "Invalid client or Invalid client credentials", "invalid_client")
    if form.get("grant_type") != "password":
        raise ApiError(400, f"grant_type {form.get('grant_type')!r} not allowed here",
                       "unsupported_grant_type")
    if form.get("username") != identity.user_name or form.get("password") != identity.password:
        raise ApiError(401, "Invalid user credentials", "invalid_grant")
    # No scope (python-chi sends none) is fine: Keycloak applies the client's default scopes.
    return Reply(200, {"access_token": call.fake.oidc_tokens.issue(), "token_type": "Bearer",
                       "expires_in": 300, "scope": form.get("scope") or "openid profile email"})


@IDENTITY.route("POST", r"/OS-FEDERATION/identity_providers/(?P<idp>[^/]+)/protocols/(?P<proto>[^/]+)/auth",
                authenticated=False)
def federated_auth(call: Call) -> Reply:
    """Keystone's OpenID Connect protected URL: an access token in, an unscoped token out."""
    identity: Identity = call.fake.identity
    if (call.params["idp"], call.params["proto"]) != (identity.identity_provider, identity.protocol):
        raise ApiError(404, f"Could not find Identity Provider: {call.params['idp']}.", "Not Found")
    header = call.headers.get("authorization", "")
    if not header.startswith("Bearer ") or not call.fake.oidc_tokens.valid(header[7:]):
        raise ApiError(401, "The request you have made requires authentication.", "Unauthorized")
    issued, record = call.fake.keystone_tokens.issue(identity, ["openid"], scoped=False)
    body = {"token": {
        "methods": ["openid"], "audit_ids": [secrets.token_urlsafe(16)],
        "user": {"id": identity.user_id, "name": identity.user_name,
                 "domain": {"id": "Federated", "name": "Federated"},
                 "OS-FEDERATION": {"identity_provider": {"id": identity.identity_provider},
                                   "protocol": {"id": identity.protocol}, "groups": []}},
        "expires_at": _iso(record["expires"]), "issued_at": _iso(record["issued"]),
    }}
    return Reply(201, body, {"X-Subject-Token": issued})
