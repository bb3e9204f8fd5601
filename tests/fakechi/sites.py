"""What each fake site holds before any request: reservable hardware, networks, images, flavors.

Close to the real sites for the hardware servebench uses (DESIGN.md): ``compute_liqid`` nodes
at CHI@TACC, ``compute_gigaio`` at CHI@UC, Raspberry Pi 5 devices at CHI@Edge; two of each, so
a lease for three is refused the way Blazar refuses it ("Not enough hosts available").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

CUDA_IMAGE = "CC-Ubuntu24.04-CUDA"
IMAGES = (CUDA_IMAGE, "CC-Ubuntu24.04", "CC-Ubuntu22.04")
PUBLIC_NETWORK = "public"


@dataclass
class Reservable:
    """A Blazar host (bare-metal node) or device: the properties reservations filter on."""

    id: str  # Blazar's id for it
    uid: str  # hardware uid (hypervisor_hostname for nodes, doni uuid for devices)
    name: str
    properties: dict[str, str]


@dataclass
class SiteSpec:
    name: str
    uid: str
    location: str
    reservable_type: str  # "physical:host" or "device"
    reservables: list[Reservable]
    tenant_network: str  # where servers / containers get their fixed address
    tenant_cidr: str
    images: tuple[str, ...] = IMAGES
    flavors: tuple[str, ...] = ("baremetal",)
    extra: dict = field(default_factory=dict)


def _nodes(site_uid: str, node_type: str, count: int) -> list[Reservable]:
    out = []
    for i in range(1, count + 1):
        name = f"{node_type.replace('compute_', '')}-{i:02d}"
        out.append(Reservable(
            id=str(i), uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{site_uid}.{name}")), name=name,
            properties={"node_type": node_type, "node_name": name,
                        "architecture.platform_type": "x86_64", "gpu.gpu": "True"},
        ))
    return out


def _devices(count: int) -> list[Reservable]:
    out = []
    for i in range(1, count + 1):
        name = f"rpi5-{i:02d}"
        device_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"edge.{name}"))
        out.append(Reservable(
            id=str(i), uid=device_uuid, name=name,
            properties={"machine_name": "raspberrypi5", "model": "Raspberry Pi 5",
                        "vendor": "Raspberry Pi", "platform_version": "2", "name": name,
                        "device_name": name, "uid": device_uuid, "device_type": "container"},
        ))
    return out


def default_sites() -> list[SiteSpec]:
    return [
        SiteSpec("CHI@TACC", "tacc", "Austin, Texas, USA", "physical:host",
                 _nodes("tacc", "compute_liqid", 2), "sharednet1", "10.52.0.0/22"),
        SiteSpec("CHI@UC", "uc", "Argonne National Laboratory, Lemont, Illinois, USA",
                 "physical:host", _nodes("uc", "compute_gigaio", 2), "sharednet1", "10.140.80.0/22"),
        SiteSpec("CHI@Edge", "edge", "Chicago, Illinois, USA", "device", _devices(2),
                 "containernet1", "192.168.100.0/24", images=()),
    ]
