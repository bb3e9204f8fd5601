"""HTTP plumbing of the fake Chameleon: routing, the request log, fault injection, error bodies.

Each service module declares its routes on a ``Service`` (a path prefix plus the error body shape
that service's real client parses); ``SiteHandler`` dispatches every request of one site's
server to them. Request bodies and headers are never logged: they carry passwords, application
credential secrets and tokens.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from .server import FakeChameleon


class ApiError(Exception):
    """Raised by a route: rendered in the shape the service's own client parses."""

    def __init__(self, status: int, message: str, name: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.name = name


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text/plain, bytes -> octet-stream, None -> empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request as a route sees it."""

    fake: "FakeChameleon"
    site: str  # region name, e.g. "CHI@TACC"
    method: str
    path: str  # full path, without the query
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    headers: dict[str, str]
    params: dict[str, str]  # named groups of the route's pattern
    token: dict | None = None  # the token record the request authenticated with
    fates: list[str] = field(default_factory=list)  # "error_state" / "never_active" injected here
    raw: bytes = b""  # the body as sent (an OAuth token request is a form, not JSON)

    @property
    def project_id(self) -> str:
        return self.token["project_id"]


@dataclass(frozen=True)
class RequestRecord:
    """What the request log keeps. Never a body or a header, where passwords, application
    credential secrets and tokens travel; the query is kept (Zun's exec command is one)."""

    site: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    service: str
    at: float


def _blazar_error(status: int, message: str, name: str | None) -> Any:
    return {"error_code": status, "error_message": message, "error_name": name or status}


_NOVA_FAULT_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
                    409: "conflictingRequest"}


def _nova_error(status: int, message: str, name: str | None) -> Any:
    return {_NOVA_FAULT_KEYS.get(status, "computeFault"): {"code": status, "message": message}}


def _neutron_error(status: int, message: str, name: str | None) -> Any:
    return {"NeutronError": {"type": name or "HTTPError", "message": message, "detail": ""}}


def _glance_error(status: int, message: str, name: str | None) -> Any:
    return f"{status} {name or 'Error'}\n\n{message}\n"


def _zun_error(status: int, message: str, name: str | None) -> Any:
    return {"errors": [{"request_id": "", "code": "", "status": status, "title": name or "Error",
                        "detail": message, "links": []}]}


def _keystone_error(status: int, message: str, name: str | None) -> Any:
    return {"error": {"code": status, "message": message, "title": name or "Error"}}


def _oauth_error(status: int, message: str, name: str | None) -> Any:
    return {"error": name or "invalid_request", "error_description": message}


Handler = Callable[[Call], Reply]


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Handler
    service: "Service"
    authenticated: bool


class Service:
    """A service's routes under one path prefix, with that service's error body shape."""

    ERROR_SHAPES = {
        "reservation": _blazar_error,
        "compute": _nova_error,
        "network": _neutron_error,
        "image": _glance_error,
        "container": _zun_error,
        "identity": _keystone_error,
        "resources": _keystone_error,
        "oauth": _oauth_error,
    }

    def __init__(self, service_type: str, prefix: str):
        self.type = service_type
        self.prefix = prefix
        self.routes: list[Route] = []
        self.error_body = self.ERROR_SHAPES[service_type]

    def route(self, method: str, pattern: str, authenticated: bool = True):
        """Declare ``handler`` for ``method`` on ``prefix + pattern`` (a full match)."""

        def register(handler: Handler) -> Handler:
            regex = re.compile(re.escape(self.prefix) + pattern + "/?")
            self.routes.append(Route(method, regex, handler, self, authenticated))
            return handler

        return register


def render(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, body, dict(headers or {}))


class SiteHandler(BaseHTTPRequestHandler):
    """Serves one site; ``self.server.fake`` holds all state, ``self.server.site`` the region."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-chameleon/1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """The fake keeps its own request log (without secrets); stderr stays quiet."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        fake: FakeChameleon = self.server.fake
        site: str = self.server.site
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        raw = self._read_body()
        route, params = fake.router.match(self.command, path)
        service = route.service if route else None
        reply = self._handle(fake, site, route, params, path, query, raw)
        fake.log_request(RequestRecord(
            site=site, method=self.command, path=path,
            query=tuple(sorted(query.items())), status=reply.status,
            service=service.type if service else "unknown", at=time.time(),
        ))
        self._send(reply)

    def _handle(self, fake, site, route, params, path, query, raw) -> Reply:
        if route is None:
            # An unknown route is a gap in the fake, not a client error: say so loudly in the log.
            return render(404, {"error": {"code": 404, "title": "Not Found",
                                          "message": f"fake Chameleon has no route {self.command} {path}"}})
        service = route.service
        try:
            body = json.loads(raw) if raw and "json" in (self.headers.get("Content-Type") or "json") else None
        except ValueError:
            return render(400, service.error_body(400, "Malformed JSON body", "BadRequest"))
        call = Call(fake=fake, site=site, method=self.command, path=path, query=query, body=body,
                    headers={k.lower(): v for k, v in self.headers.items()}, params=params,
                    raw=raw)
        try:
            fault = fake.faults.take(self.command, path, site)
            if fault is not None:
                early = fault.apply(call, fake.stopping)
                if early is not None:
                    return render(early[0], service.error_body(*early))
            if route.authenticated:
                call.token = fake.keystone_tokens.check(call.headers.get("x-auth-token"))
                if call.token["project_id"] is None:  # unscoped: good for rescoping only
                    raise ApiError(401, "The request you have made requires authentication.",
                                   "Unauthorized")
            # One request at a time past this point (hangs wait above): routes read and change
            # several tables, and are quick.
            with fake.state.lock:
                return route.handler(call)
        except ApiError as err:
            return render(err.status, service.error_body(err.status, err.message, err.name))
        except Exception:  # a bug in the fake: answer 500 and keep it for the fixture to report
            fake.internal_errors.append(f"{self.command} {path}\n{traceback.format_exc()}")
            return render(500, service.error_body(500, "fake Chameleon internal error", "FakeBug"))

    def _send(self, reply: Reply) -> None:
        body = reply.body
        headers = dict(reply.headers)
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
            headers.setdefault("Content-Type", "application/octet-stream")
        elif isinstance(body, str):
            payload = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
        else:
            payload = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(reply.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)


class Router:
    def __init__(self, services: list[Service]):
        self.services = services

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for service in self.services:
            if not path.startswith(service.prefix):
                continue
            for route in service.routes:
                if route.method != method and not (method == "HEAD" and route.method == "GET"):
                    continue
                m = route.pattern.fullmatch(path)
                if m:
                    return route, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, {}


class Stopping:
    """Set when the fake stops, so a hanging request returns at once instead of at its deadline."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self, seconds: float) -> None:
        self.event.wait(seconds)
