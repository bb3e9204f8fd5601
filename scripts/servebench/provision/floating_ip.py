"""Floating IPs: allocated explicitly, one per deployment, marked as ours; released explicitly.

python-chi's own helpers (``associate_floating_ip`` with no address, ``get_free_floating_ip``)
take *any* unattached address of the project, which may belong to another experiment; chi-down
would then release someone else's address. So we allocate a new one, tagged in its description
with the deployment name (how ``chi-down --name`` finds it when the state file is lost), and
pass that address to python-chi's associate helpers.
"""

from __future__ import annotations

from dataclasses import dataclass

DESCRIPTION_PREFIX = "servebench:"


def description(deployment: str) -> str:
    return f"{DESCRIPTION_PREFIX}{deployment}"


@dataclass(frozen=True)
class FloatingIp:
    id: str
    address: str


def allocate(deployment: str) -> FloatingIp:
    from chi.clients import neutron
    from chi.network import PUBLIC_NETWORK, get_network_id

    body = {"floatingip": {"floating_network_id": get_network_id(PUBLIC_NETWORK),
                           "description": description(deployment)}}
    fip = neutron().create_floatingip(body)["floatingip"]
    return FloatingIp(id=fip["id"], address=fip["floating_ip_address"])


def list_ours(deployment: str) -> list[dict]:
    from chi.network import list_floating_ips

    return [f for f in list_floating_ips() if f.get("description") == description(deployment)]


def release(entry_id: str, address: str) -> bool:
    """Release our address; False when it is already gone. Checks the id first: an address
    released earlier may since have gone to someone else in the project."""
    from chi.network import deallocate_floating_ip, list_floating_ips

    current = next((f for f in list_floating_ips() if f["floating_ip_address"] == address), None)
    if current is None or current["id"] != entry_id:
        return False
    deallocate_floating_ip(address)
    return True
