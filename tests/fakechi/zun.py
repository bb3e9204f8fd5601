"""Zun (container) routes python-zunclient 1.41 calls: create (accepting Chameleon's
``device_profiles``), get by id or name, list, delete, execute, put_archive, logs."""

from __future__ import annotations

import base64
import binascii
import io
import tarfile

from .http import ApiError, Call, Reply, Service
from .state import Container, State

ZUN = Service("container", "/container")
V1 = "/v1"
API_VERSION = "container 1.41"


def container_json(state: State, c: Container) -> dict:
    port = state.ports.get(c.port_id)
    addresses = {}
    if port is not None:
        addresses[port.network_id] = [{"addr": port.ip_address, "version": 4, "port": port.id,
                                       "subnet_id": port.subnet_id, "preserve_on_delete": False}]
    return {
        "uuid": c.id, "name": c.name, "image": c.image, "status": c.status,
        "status_reason": c.status_reason, "status_detail": None if c.status != "Running" else "Just now",
        "task_state": "creating" if c.status == "Creating" else None,
        "addresses": addresses, "ports": [int(str(p).split("/")[0]) for p in c.exposed_ports],
        "command": c.command, "environment": c.environment, "labels": {}, "cpu": 1.0,
        "memory": "1024M", "workdir": None, "hostname": c.name or c.id[:12],
        "host": c.device.name if c.device else None, "project_id": c.project_id,
        "user_id": "", "image_driver": "docker", "image_pull_policy": None,
        "restart_policy": {}, "interactive": False, "tty": False, "auto_remove": False,
        "auto_heal": False, "privileged": False, "healthcheck": {}, "runtime": None,
        "disk": 0, "registry_id": None, "entrypoint": None, "cpu_policy": "shared",
        "security_groups": [], "device_profiles": c.device_profiles,
        "links": [{"rel": "self", "href": f"/v1/containers/{c.id}"}],
    }


def _container(call: Call) -> Container:
    """By uuid or by name, as Zun resolves ``containers.get(ref)``."""
    state: State = call.fake.state
    ref = call.params["ref"]
    with state.lock:
        mine = state.mine(state.containers, call.site, call.project_id)
        by_id = [c for c in mine if c.id == ref]
        by_name = [c for c in mine if c.name == ref]
    if by_id:
        return by_id[0]
    if len(by_name) > 1:
        raise ApiError(409, f"Multiple containers exist with same name: {ref}. Please use the "
                            "container uuid instead.", "Conflict")
    if not by_name:
        raise ApiError(404, f"Container {ref} could not be found.", "Not Found")
    return by_name[0]


def _running(state: State, c: Container, verb: str) -> None:
    if state.observe_container(c, poll=False).status != "Running":
        raise ApiError(409, f"Cannot {verb} container {c.id} in {c.status} state.", "Conflict")


def _reply(status: int, body=None) -> Reply:
    return Reply(status, body, {"OpenStack-API-Version": API_VERSION})


@ZUN.route("GET", "", authenticated=False)
def versions(call: Call) -> Reply:
    base = call.fake.site_url(call.site) + ZUN.prefix
    return Reply(200, {"versions": [{"id": "v1", "status": "CURRENT", "min_version": "1.1",
                                     "max_version": "1.41",
                                     "links": [{"rel": "self", "href": f"{base}/v1/"}]}]})


@ZUN.route("GET", V1 + "/containers")
def list_containers(call: Call) -> Reply:
    state: State = call.fake.state
    with state.lock:
        mine = [state.observe_container(c, poll=False)
                for c in state.mine(state.containers, call.site, call.project_id)]
        return _reply(200, {"containers": [container_json(state, c) for c in mine], "next": None})


@ZUN.route("POST", V1 + "/containers")
def create_container(call: Call) -> Reply:
    state: State = call.fake.state
    body = call.body or {}
    if not body.get("image"):
        raise ApiError(400, "Invalid input for field/attribute image.", "Bad Request")
    site = state.site(call.site)
    network = site.network_named(site.spec.tenant_network)
    container = state.create_container(call.site, call.project_id, body, network, call.fates)
    return _reply(202, container_json(state, container))


@ZUN.route("GET", V1 + r"/containers/(?P<ref>[^/]+)")
def show_container(call: Call) -> Reply:
    state: State = call.fake.state
    container = _container(call)
    if "error_state" in call.fates:
        container.fate = "error_state"
    return _reply(200, container_json(state, state.observe_container(container, poll=True)))


@ZUN.route("DELETE", V1 + r"/containers/(?P<ref>[^/]+)")
def delete_container(call: Call) -> Reply:
    state: State = call.fake.state
    container = _container(call)
    force = call.query.get("force", "").lower() == "true"
    stop = call.query.get("stop", "").lower() == "true"
    if force:
        # Upstream Zun's default policy (container:delete_force): admins only.
        raise ApiError(403, "Policy doesn't allow container:delete_force to be performed.",
                       "Forbidden")
    if state.observe_container(container, poll=False).status == "Running" and not stop:
        raise ApiError(409, f"Cannot delete container {container.id} in Running state.", "Conflict")
    state.delete_container(container)
    return _reply(204)


@ZUN.route("POST", V1 + r"/containers/(?P<ref>[^/]+)/execute")
def execute(call: Call) -> Reply:
    state: State = call.fake.state
    container = _container(call)
    _running(state, container, "execute")
    command = call.query.get("command", "")
    output, code = state.execute(container, command)
    if call.query.get("run", "true").lower() == "false":
        return _reply(200, {"output": None, "exit_code": None, "exec_id": container.id[::-1],
                            "url": None})
    return _reply(200, {"output": output, "exit_code": code, "exec_id": None, "url": None})


@ZUN.route("POST", V1 + r"/containers/(?P<ref>[^/]+)/put_archive")
def put_archive(call: Call) -> Reply:
    state: State = call.fake.state
    container = _container(call)
    _running(state, container, "put_archive")
    try:
        data = base64.b64decode((call.body or {}).get("data", ""), validate=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (binascii.Error, tarfile.TarError) as err:
        raise ApiError(400, f"Invalid tar archive: {err}", "Bad Request")
    state.put_archive(container, call.query.get("path", "/"), members)
    return _reply(200)


@ZUN.route("GET", V1 + r"/containers/(?P<ref>[^/]+)/logs")
def logs(call: Call) -> Reply:
    container = _container(call)
    return _reply(200, "".join(f"$ {cmd}\n" for cmd in container.executed))
