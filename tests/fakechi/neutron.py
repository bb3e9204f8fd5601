"""Neutron (network) routes neutronclient and openstacksdk's network proxy call: networks,
subnets, ports, floating IPs (allocate, associate, release, tags)."""

from __future__ import annotations

from .http import ApiError, Call, Reply, Service
from .state import FloatingIp, Network, Port, State

NEUTRON = Service("network", "/network")
V20 = "/v2.0"
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _stamp(state: State, epoch: float) -> str:
    return state.to_datetime(epoch).strftime(STAMP)


def _filtered(items: list[dict], query: dict[str, str]) -> list[dict]:
    """Neutron's list filters: field=value; ``tags`` matches any item carrying that tag."""
    out = items
    for key, value in query.items():
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir"):
            continue
        if key == "tags":
            out = [i for i in out if set(value.split(",")) <= set(i.get("tags", []))]
        elif out and key in out[0]:
            out = [i for i in out if str(i.get(key)) == value
                   or (isinstance(i.get(key), bool) and str(i[key]).lower() == value.lower())]
    return out


@NEUTRON.route("GET", "", authenticated=False)
def versions(call: Call) -> Reply:
    base = call.fake.site_url(call.site) + NEUTRON.prefix
    return Reply(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                     "links": [{"rel": "self", "href": f"{base}/v2.0/"}]}]})


@NEUTRON.route("GET", V20, authenticated=False)
def version(call: Call) -> Reply:
    return Reply(200, {"resources": [{"name": n, "collection": f"{n}s"} for n in
                                     ("network", "subnet", "port", "floatingip")]})


# -- networks ----------------------------------------------------------------------------------

def _network_json(net: Network) -> dict:
    return {"id": net.id, "name": net.name, "status": "ACTIVE", "subnets": [net.subnet_id],
            "shared": True, "router:external": net.external, "admin_state_up": True,
            "tenant_id": "admin", "project_id": "admin", "mtu": 1500, "description": "",
            "availability_zones": ["nova"], "tags": [], "port_security_enabled": True,
            "is_default": net.external, "revision_number": 1,
            "provider:physical_network": "public" if net.external else "physnet1"}


@NEUTRON.route("GET", V20 + "/networks")
def list_networks(call: Call) -> Reply:
    nets = [_network_json(n) for n in call.fake.state.site(call.site).networks.values()]
    return Reply(200, {"networks": _filtered(nets, call.query)})


@NEUTRON.route("GET", V20 + r"/networks/(?P<ref>[^/]+)")
def show_network(call: Call) -> Reply:
    net = call.fake.state.site(call.site).networks.get(call.params["ref"])
    if net is None:
        raise ApiError(404, f"Network {call.params['ref']} could not be found.", "NetworkNotFound")
    return Reply(200, {"network": _network_json(net)})


@NEUTRON.route("GET", V20 + "/subnets")
def list_subnets(call: Call) -> Reply:
    subnets = [{"id": n.subnet_id, "name": f"{n.name}-subnet", "network_id": n.id, "cidr": n.cidr,
                "ip_version": 4, "enable_dhcp": not n.external, "tags": []}
               for n in call.fake.state.site(call.site).networks.values()]
    return Reply(200, {"subnets": _filtered(subnets, call.query)})


# -- ports -------------------------------------------------------------------------------------

def _port_json(state: State, port: Port) -> dict:
    return {"id": port.id, "name": port.name, "network_id": port.network_id,
            "mac_address": port.mac, "fixed_ips": [{"subnet_id": port.subnet_id,
                                                    "ip_address": port.ip_address}],
            "device_id": port.device_id, "device_owner": port.device_owner, "status": "ACTIVE",
            "admin_state_up": True, "tenant_id": port.project_id, "project_id": port.project_id,
            "security_groups": [], "binding:vnic_type": "normal", "description": "", "tags": [],
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "port_security_enabled": True,
            "created_at": _stamp(state, port.created), "updated_at": _stamp(state, port.created),
            "revision_number": 1}


def _port(call: Call) -> Port:
    state: State = call.fake.state
    return state.one(state.ports, call.params["port_id"], call.site, call.project_id, "Port")


@NEUTRON.route("GET", V20 + "/ports")
def list_ports(call: Call) -> Reply:
    state: State = call.fake.state
    with state.lock:
        ports = [_port_json(state, p) for p in state.mine(state.ports, call.site, call.project_id)]
    return Reply(200, {"ports": _filtered(ports, call.query)})


@NEUTRON.route("POST", V20 + "/ports")
def create_port(call: Call) -> Reply:
    state: State = call.fake.state
    body = (call.body or {}).get("port") or {}
    net = state.site(call.site).networks.get(body.get("network_id", ""))
    if net is None:
        raise ApiError(404, f"Network {body.get('network_id')} could not be found.", "NetworkNotFound")
    port = state.create_port(call.site, call.project_id, net, body.get("device_id", ""),
                             body.get("device_owner", ""), body.get("name", ""))
    return Reply(201, {"port": _port_json(state, port)})


@NEUTRON.route("GET", V20 + r"/ports/(?P<port_id>[^/]+)")
def show_port(call: Call) -> Reply:
    return Reply(200, {"port": _port_json(call.fake.state, _port(call))})


@NEUTRON.route("DELETE", V20 + r"/ports/(?P<port_id>[^/]+)")
def delete_port(call: Call) -> Reply:
    call.fake.state.delete_port(_port(call))
    return Reply(204)


# -- floating IPs ------------------------------------------------------------------------------

def _fip_json(state: State, fip: FloatingIp) -> dict:
    port = state.ports.get(fip.port_id) if fip.port_id else None
    return {"id": fip.id, "floating_ip_address": fip.address, "floating_network_id": fip.network_id,
            "router_id": "router-public" if port else None, "port_id": fip.port_id,
            "fixed_ip_address": port.ip_address if port else None,
            "status": "ACTIVE" if port else "DOWN", "tenant_id": fip.project_id,
            "project_id": fip.project_id, "description": fip.description, "tags": list(fip.tags),
            "dns_domain": "", "dns_name": "", "port_details": None, "qos_policy_id": None,
            "port_forwardings": [], "revision_number": 1,
            "created_at": _stamp(state, fip.created), "updated_at": _stamp(state, fip.created)}


def _fip(call: Call) -> FloatingIp:
    state: State = call.fake.state
    return state.one(state.floating_ips, call.params["fip_id"], call.site, call.project_id, "Floating IP")


@NEUTRON.route("GET", V20 + "/floatingips")
def list_fips(call: Call) -> Reply:
    state: State = call.fake.state
    with state.lock:
        fips = [_fip_json(state, f) for f in state.mine(state.floating_ips, call.site, call.project_id)]
    return Reply(200, {"floatingips": _filtered(fips, call.query)})


@NEUTRON.route("POST", V20 + "/floatingips")
def create_fip(call: Call) -> Reply:
    state: State = call.fake.state
    body = (call.body or {}).get("floatingip") or {}
    net = state.site(call.site).networks.get(body.get("floating_network_id", ""))
    if net is None or not net.external:
        raise ApiError(404, f"Network {body.get('floating_network_id')} could not be found.",
                       "ExternalGatewayForFloatingIPNotFound")
    fip = state.allocate_fip(call.site, call.project_id, net, body.get("description", ""),
                             body.get("floating_ip_address"))
    if body.get("port_id"):
        state.bind_fip(fip, body["port_id"])
    return Reply(201, {"floatingip": _fip_json(state, fip)})


@NEUTRON.route("GET", V20 + r"/floatingips/(?P<fip_id>[^/]+)")
def show_fip(call: Call) -> Reply:
    return Reply(200, {"floatingip": _fip_json(call.fake.state, _fip(call))})


@NEUTRON.route("PUT", V20 + r"/floatingips/(?P<fip_id>[^/]+)")
def update_fip(call: Call) -> Reply:
    state: State = call.fake.state
    fip = _fip(call)
    body = (call.body or {}).get("floatingip") or {}
    if "port_id" in body:
        state.bind_fip(fip, body["port_id"])
    if "description" in body:
        fip.description = body["description"]
    return Reply(200, {"floatingip": _fip_json(state, fip)})


@NEUTRON.route("DELETE", V20 + r"/floatingips/(?P<fip_id>[^/]+)")
def delete_fip(call: Call) -> Reply:
    call.fake.state.release_fip(_fip(call))
    return Reply(204)


@NEUTRON.route("PUT", V20 + r"/floatingips/(?P<fip_id>[^/]+)/tags")
def replace_fip_tags(call: Call) -> Reply:
    fip = _fip(call)
    fip.tags = list((call.body or {}).get("tags") or [])
    return Reply(200, {"tags": fip.tags})


@NEUTRON.route("PUT", V20 + r"/floatingips/(?P<fip_id>[^/]+)/tags/(?P<tag>[^/]+)")
def add_fip_tag(call: Call) -> Reply:
    fip = _fip(call)
    if call.params["tag"] not in fip.tags:
        fip.tags.append(call.params["tag"])
    return Reply(201)
