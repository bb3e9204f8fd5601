"""Nova (compute) routes novaclient 2.61 and openstacksdk's compute proxy call: flavors,
keypairs, servers, and the version documents openstacksdk discovers microversions from."""

from __future__ import annotations

from .http import ApiError, Call, Reply, Service
from .state import Keypair, Server, State, key_fingerprint

NOVA = Service("compute", "/compute")
V21 = "/v2.1"
MAX_MICROVERSION = "2.96"


def _stamp(state: State, epoch: float) -> str:
    return state.to_datetime(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(base: str) -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": MAX_MICROVERSION, "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": f"{base}/v2.1/"}]}


@NOVA.route("GET", "", authenticated=False)
def versions(call: Call) -> Reply:
    return Reply(200, {"versions": [_version(call.fake.site_url(call.site) + NOVA.prefix)]})


@NOVA.route("GET", V21, authenticated=False)
def version(call: Call) -> Reply:
    return Reply(200, {"version": _version(call.fake.site_url(call.site) + NOVA.prefix)})


# -- flavors -----------------------------------------------------------------------------------

def _flavor_json(flavor) -> dict:
    return {"id": flavor.id, "name": flavor.name, "ram": 262144, "disk": 240, "vcpus": 128,
            "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0, "rxtx_factor": 1.0,
            "os-flavor-access:is_public": True, "OS-FLV-DISABLED:disabled": False,
            "description": None, "extra_specs": {}, "links": []}


@NOVA.route("GET", V21 + r"/flavors(?:/detail)?")
def list_flavors(call: Call) -> Reply:
    flavors = call.fake.state.site(call.site).flavors.values()
    return Reply(200, {"flavors": [_flavor_json(f) for f in flavors]})


@NOVA.route("GET", V21 + r"/flavors/(?P<ref>[^/]+)/os-extra_specs")
def flavor_extra_specs(call: Call) -> Reply:
    return Reply(200, {"extra_specs": {}})


@NOVA.route("GET", V21 + r"/flavors/(?P<ref>[^/]+)")
def show_flavor(call: Call) -> Reply:
    flavors = call.fake.state.site(call.site).flavors
    flavor = flavors.get(call.params["ref"])
    if flavor is None:
        raise ApiError(404, f"Flavor {call.params['ref']} could not be found.")
    return Reply(200, {"flavor": _flavor_json(flavor)})


# -- keypairs ----------------------------------------------------------------------------------

def _keypair_json(kp: Keypair) -> dict:
    return {"name": kp.name, "public_key": kp.public_key, "fingerprint": key_fingerprint(kp.public_key),
            "user_id": kp.user_id, "type": "ssh", "id": kp.id, "deleted": False,
            "created_at": None, "updated_at": None, "deleted_at": None}


def _keypair(call: Call) -> Keypair:
    kp = call.fake.state.keypair(call.site, call.token["user_id"], call.params["name"])
    if kp is None:
        raise ApiError(404, f"Keypair {call.params['name']} not found for user {call.token['user_id']}")
    return kp


@NOVA.route("GET", V21 + "/os-keypairs")
def list_keypairs(call: Call) -> Reply:
    state: State = call.fake.state
    mine = [k for k in state.keypairs.values() if k.site == call.site and k.user_id == call.token["user_id"]]
    return Reply(200, {"keypairs": [{"keypair": _keypair_json(k)} for k in mine]})


@NOVA.route("POST", V21 + "/os-keypairs")
def create_keypair(call: Call) -> Reply:
    body = (call.body or {}).get("keypair") or {}
    public_key = body.get("public_key")
    if not body.get("name") or not public_key:
        raise ApiError(400, "Keypair data is invalid: a name and a public_key are required "
                            "(the fake does not generate keys)")
    try:
        key_fingerprint(public_key)
    except (IndexError, ValueError):
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint")
    kp = call.fake.state.create_keypair(call.site, call.project_id, call.token["user_id"],
                                        body["name"], public_key)
    return Reply(200, {"keypair": _keypair_json(kp)})


@NOVA.route("GET", V21 + r"/os-keypairs/(?P<name>[^/]+)")
def show_keypair(call: Call) -> Reply:
    return Reply(200, {"keypair": _keypair_json(_keypair(call))})


@NOVA.route("DELETE", V21 + r"/os-keypairs/(?P<name>[^/]+)")
def delete_keypair(call: Call) -> Reply:
    state: State = call.fake.state
    with state.lock:
        state.keypairs.pop(_keypair(call).id, None)
    return Reply(202)


# -- servers -----------------------------------------------------------------------------------

def server_json(state: State, server: Server) -> dict:
    site = state.site(server.site)
    port = state.ports.get(server.port_id)
    addresses = {}
    if port is not None:
        entry = {"version": 4, "OS-EXT-IPS-MAC:mac_addr": port.mac}
        addresses[server.network_name] = [dict(entry, addr=port.ip_address, **{"OS-EXT-IPS:type": "fixed"})] + [
            dict(entry, addr=fip.address, **{"OS-EXT-IPS:type": "floating"})
            for fip in state.fips_on_port(port.id)]
    flavor = site.flavors.get(server.flavor_id)
    vm_state = {"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}[server.status]
    body = {
        "id": server.id, "name": server.name, "status": server.status,
        "tenant_id": server.project_id, "user_id": "", "metadata": {},
        "hostId": server.host.uid[:16] if server.host else "",
        "image": {"id": server.image_id, "links": []},
        "flavor": {"original_name": flavor.name if flavor else "", "vcpus": 128, "ram": 262144,
                   "disk": 240, "ephemeral": 0, "swap": 0, "extra_specs": {}},
        "created": _stamp(state, server.created), "updated": _stamp(state, state.now()),
        "addresses": addresses, "accessIPv4": "", "accessIPv6": "", "links": [],
        "OS-DCF:diskConfig": "MANUAL", "progress": 0, "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "", "key_name": server.key_name or None,
        "OS-SRV-USG:launched_at": None, "OS-SRV-USG:terminated_at": None,
        "OS-EXT-SRV-ATTR:host": server.host.name if server.host else None,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": server.host.uid if server.host else None,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{server.id[:8]}",
        "OS-EXT-STS:task_state": "spawning" if server.status == "BUILD" else None,
        "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:power_state": 1 if server.status == "ACTIVE" else 0,
        "os-extended-volumes:volumes_attached": [], "locked": False, "locked_reason": None,
        "description": None, "tags": [], "trusted_image_certificates": None,
        "host_status": "UP" if server.status == "ACTIVE" else "", "security_groups": [{"name": "default"}],
        "server_groups": [],
    }
    if server.status == "ERROR":
        body["fault"] = {"code": 500, "message": server.fault, "created": body["updated"]}
    return body


def _server(call: Call) -> Server:
    state: State = call.fake.state
    return state.one(state.servers, call.params["server_id"], call.site, call.project_id, "Instance")


@NOVA.route("GET", V21 + r"/servers(?:/detail)?")
def list_servers(call: Call) -> Reply:
    state: State = call.fake.state
    with state.lock:
        servers = [state.observe_server(s, poll=False) for s in state.mine(state.servers, call.site, call.project_id)]
        if call.query.get("name"):
            servers = [s for s in servers if call.query["name"] in s.name]
        if call.path.endswith("/detail"):
            return Reply(200, {"servers": [server_json(state, s) for s in servers]})
        return Reply(200, {"servers": [{"id": s.id, "name": s.name, "links": []} for s in servers]})


@NOVA.route("POST", V21 + "/servers")
def create_server(call: Call) -> Reply:
    state: State = call.fake.state
    site = state.site(call.site)
    body = call.body or {}
    spec = body.get("server") or {}
    hints = body.get("OS-SCH-HNT:scheduler_hints") or body.get("os:scheduler_hints") or {}
    if not spec.get("name"):
        raise ApiError(400, "Invalid input for field/attribute name.")
    if spec.get("flavorRef") not in site.flavors:
        raise ApiError(400, f"Flavor {spec.get('flavorRef')} could not be found.")
    if spec.get("imageRef") not in site.images:
        raise ApiError(400, f"Image {spec.get('imageRef')} could not be found.")
    keypair = None
    if spec.get("key_name"):
        keypair = state.keypair(call.site, call.token["user_id"], spec["key_name"])
        if keypair is None:
            raise ApiError(400, "Invalid key_name provided.")
    nets = spec.get("networks") or []
    if not isinstance(nets, list) or len(nets) != 1 or nets[0].get("uuid") not in site.networks:
        raise ApiError(400, f"Network {nets} could not be found (the fake takes one network uuid).")
    server = state.create_server(call.site, call.project_id, spec["name"], spec["imageRef"],
                                 spec["flavorRef"], keypair, site.networks[nets[0]["uuid"]],
                                 hints.get("reservation"), call.fates)
    return Reply(202, {"server": {"id": server.id, "links": [], "OS-DCF:diskConfig": "MANUAL",
                                  "security_groups": [{"name": "default"}], "adminPass": "unused"}})


@NOVA.route("GET", V21 + r"/servers/(?P<server_id>[^/]+)")
def show_server(call: Call) -> Reply:
    state: State = call.fake.state
    server = _server(call)
    if "error_state" in call.fates:
        server.fate = "error_state"
    return Reply(200, {"server": server_json(state, state.observe_server(server, poll=True))})


@NOVA.route("DELETE", V21 + r"/servers/(?P<server_id>[^/]+)")
def delete_server(call: Call) -> Reply:
    call.fake.state.delete_server(_server(call))
    return Reply(204)


@NOVA.route("POST", V21 + r"/servers/(?P<server_id>[^/]+)/action")
def server_action(call: Call) -> Reply:
    _server(call)
    action = next(iter(call.body or {}), "")
    # Nova dropped the floating IP proxy actions at microversion 2.44; python-chi still sends
    # removeFloatingIp (Server.detach_floating_ip) and gets this 404, as from a real Nova.
    raise ApiError(404, f"There is no such action: {action}")
