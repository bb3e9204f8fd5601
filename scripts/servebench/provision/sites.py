"""The three Chameleon sites the study uses, and what each one provides.

The CPU and GPU options of the study share one bare-metal node type (AMD EPYC 7763 + NVIDIA
A100: ``compute_liqid`` at CHI@TACC, ``compute_gigaio`` at CHI@UC); the edge option is a
Raspberry Pi 5 at CHI@Edge, reached through a Zun container.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from servebench.errors import UsageError

# Node types with an A100 on board: a server of one of these types runs the GPU variants too.
GPU_NODE_TYPES = frozenset({"compute_liqid", "compute_gigaio"})


@dataclass(frozen=True)
class Site:
    key: str                 # what the user types: tacc, uc, edge
    region: str              # Chameleon's site name, as in sites.json
    kind: str                # "server" (bare metal) or "container" (Zun on an edge device)
    default_duration: timedelta
    node_type: str | None = None       # servers: default node type to reserve
    machine_type: str | None = None    # edge: default device machine type to reserve
    image: str = ""                    # default disk image (servers) or container image (edge)
    network: str = ""                  # network the instance joins
    ssh_user: str = ""                 # login of the image

    @property
    def is_edge(self) -> bool:
        return self.kind == "container"

    def default_lease_name(self, user: str) -> str:
        """The course's naming habit: ``serve_model_<user>`` for servers, ``serve_edge_<user>``."""
        return f"serve_{'edge' if self.is_edge else 'model'}_{user}"


_SERVER_IMAGE = "CC-Ubuntu24.04-CUDA"
# Debian-based, multi-arch python image pinned to arm64: the engine runs natively in it, and
# Ansible needs a python on the target.
_EDGE_IMAGE = "arm64v8/python:3.11-slim-bookworm"

SITES: dict[str, Site] = {
    "tacc": Site("tacc", "CHI@TACC", "server", timedelta(hours=3), node_type="compute_liqid",
                 image=_SERVER_IMAGE, network="sharednet1", ssh_user="cc"),
    "uc": Site("uc", "CHI@UC", "server", timedelta(hours=3), node_type="compute_gigaio",
               image=_SERVER_IMAGE, network="sharednet1", ssh_user="cc"),
    "edge": Site("edge", "CHI@Edge", "container", timedelta(hours=2), machine_type="raspberrypi5",
                 image=_EDGE_IMAGE, network="containernet1", ssh_user="root"),
}


def get_site(key: str) -> Site:
    try:
        return SITES[key.lower()]
    except KeyError:
        raise UsageError(f"unknown site {key!r}: choose one of {', '.join(SITES)}") from None
