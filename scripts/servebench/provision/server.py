"""A bare-metal server on the lease: keypair, launch, wait until ACTIVE.

python-chi quirks handled here:
- ``Server.submit`` throws away what Nova returns, so the new server's id is never set on the
  object; we look it up by name (``get_server_id``) right after the request.
- ``Server.submit``'s default ``show="widget"`` raises outside Jupyter; we pass ``show=None``
  and wait ourselves (its wait polls every 5 s with a 20 min default).
- ``Server.__init__`` without a key name silently uses ``<USER>-jupyter``; we always name it.
"""

from __future__ import annotations

from typing import Callable

from servebench.errors import ProvisionError

from .waiting import wait_for


def ensure_keypair(name: str, public_key: str) -> None:
    """Create the Nova keypair, or replace it when it holds another public key."""
    import chi.server

    chi.server.update_keypair(key_name=name, public_key=public_key)


def find_server(name: str) -> str | None:
    import chi.server

    return chi.server.get_server_id(name)


def launch(name: str, reservation_id: str, image: str, key_name: str, network: str) -> None:
    from chi.server import Server

    Server(name, reservation_id=reservation_id, image_name=image, key_name=key_name,
           network_name=network).submit(wait_for_active=False, show=None)


def wait_active(server_id: str, name: str, timeout_s: float, say: Callable[[str], None]) -> None:
    from chi.clients import nova

    def probe() -> tuple[bool, str]:
        server = nova().servers.get(server_id)
        if server.status == "ERROR":
            fault = (getattr(server, "fault", None) or {}).get("message", "no reason given")
            raise ProvisionError(f"server {name} went ERROR: {fault}",
                                 hint="the node may be faulty: chi-down, then chi-up again")
        return server.status == "ACTIVE", server.status

    wait_for(f"server {name}", probe, timeout_s, say,
             hint="bare metal takes 10-20 minutes to boot; raise --wait-timeout")


def associate(server_id: str, address: str) -> None:
    import chi.server

    chi.server.associate_floating_ip(server_id, floating_ip_address=address)
