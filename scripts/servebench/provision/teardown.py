"""Removing what a deployment made, then proving it is gone.

Order: containers, servers, floating IPs, the lease. Floating IPs are released explicitly
(``chi.network.deallocate_floating_ip``): ``Server.delete(delete_ips=True)`` and
``detach_floating_ip`` send the DELETE to a wrong path and fail silently, and
``Container.delete()`` never releases its address. Idempotent: what is already gone counts as
removed. Then it lists each kind of resource until nothing it made remains or the deadline
passes, re-sending a delete that failed (a transient 500 heals); leftovers are an error that
names each one. Used by chi-down and by chi-up's rollback alike. (Deleting a lease also
makes Blazar delete the instances on it, but never their floating IPs.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from servebench.errors import TeardownError

from . import floating_ip
from .cloud import short
from .state import KINDS, State, instance_name
from .waiting import poll_interval

_GONE_LEASE_STATES = ("TERMINATED", "DELETED")


def _is_not_found(exc: Exception) -> bool:
    from chi.exception import CHIValueError

    if isinstance(exc, CHIValueError):
        return "not found" in str(exc).lower()
    codes = {getattr(exc, "code", None), getattr(exc, "status_code", None),
             getattr(exc, "http_status", None), (getattr(exc, "kwargs", None) or {}).get("code")}
    return 404 in codes or type(exc).__name__ == "NotFound"


def _label(entry: dict) -> str:
    kind = entry["kind"].replace("_", " ")
    what = entry.get("address") or entry.get("name")
    ident = f" ({entry['id']})" if entry.get("id") and entry.get("address") is None else ""
    return f"{kind} {what}{ident}"


@dataclass
class Listing:
    """One listing of everything that could be ours, per kind."""

    leases: list[dict] = field(default_factory=list)
    servers: list[dict] = field(default_factory=list)
    containers: list[dict] = field(default_factory=list)
    floating_ips: list[dict] = field(default_factory=list)

    @classmethod
    def take(cls, kinds: set[str]) -> "Listing":
        from chi.clients import blazar, nova, zun
        from chi.network import list_floating_ips

        inv = cls()
        if "lease" in kinds:
            inv.leases = [{"id": l["id"], "name": l["name"], "status": l.get("status")}
                          for l in blazar().lease.list()]
        if "server" in kinds:
            inv.servers = [{"id": s.id, "name": s.name} for s in nova().servers.list()]
        if "container" in kinds:
            inv.containers = [{"id": c.uuid, "name": c.name} for c in zun().containers.list()]
        if "floating_ip" in kinds:
            inv.floating_ips = [{"id": f["id"], "address": f["floating_ip_address"],
                                 "description": f.get("description") or ""}
                                for f in list_floating_ips()]
        return inv

    def matches(self, entry: dict, deployment: str) -> list[dict]:
        """The live resources that are this entry (by id; by name while the id is unknown)."""
        pool = {"lease": self.leases, "server": self.servers, "container": self.containers,
                "floating_ip": self.floating_ips}[entry["kind"]]
        pool = [r for r in pool if r.get("status") not in _GONE_LEASE_STATES]
        if entry.get("id"):
            return [r for r in pool if r["id"] == entry["id"]]
        if entry["kind"] == "floating_ip":
            return [r for r in pool if r["description"] == floating_ip.description(deployment)]
        return [r for r in pool if r["name"] == entry["name"]]


def discover(deployment: str) -> list[dict]:
    """What a deployment of that name holds, found by name when its state file is lost."""
    inv = Listing.take(set(KINDS))
    node = instance_name(deployment)
    found = [{"kind": "container", **c} for c in inv.containers if c["name"] == node]
    found += [{"kind": "server", **s} for s in inv.servers if s["name"] == node]
    found += [{"kind": "floating_ip", "name": f["address"], "id": f["id"], "address": f["address"]}
              for f in inv.floating_ips if f["description"] == floating_ip.description(deployment)]
    found += [{"kind": "lease", "id": l["id"], "name": l["name"]} for l in inv.leases
              if l["name"] == deployment and l.get("status") not in _GONE_LEASE_STATES]
    return found


def _delete(entry: dict) -> None:
    from chi.clients import blazar
    from chi.container import destroy_container
    from chi.server import delete_server

    kind, ident = entry["kind"], entry["id"]
    if kind == "container":
        # force=True is admin-only under Zun's default policy (403 for a project member), and
        # python-chi's Container.delete() sends it; stop=True is the owner's way. Should even
        # that be refused, the lease's deletion (later in this pass) takes the container with it.
        destroy_container(ident, stop=True)
    elif kind == "server":
        delete_server(ident)
    elif kind == "floating_ip":
        floating_ip.release(ident, entry["address"])
    elif kind == "lease":
        blazar().lease.delete(ident)


def _live_targets(entries: list[dict], inv: Listing, deployment: str) -> list[dict]:
    """Each live resource the entries stand for, with its id, in removal order. Entries
    recorded before their id was known are matched by name, every time we look: a create
    whose answer was lost may still have made something."""
    seen, targets = set(), []
    for entry in entries:
        for live in inv.matches(entry, deployment):
            key = (entry["kind"], live["id"])
            if key not in seen:
                seen.add(key)
                targets.append({**entry, "id": live["id"],
                                "address": live.get("address", entry.get("address"))})
    return sorted(targets, key=lambda t: KINDS.index(t["kind"]))


@dataclass
class Result:
    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def teardown(entries: list[dict], deployment: str, timeout_s: float,
             say: Callable[[str], None], state: State | None = None) -> Result:
    """Delete what ``entries`` (state entries or discovered ones) stand for, verify by listing,
    and forget each gone entry from ``state``. Leftovers are returned in ``Result.left``."""
    result = Result()
    entries = list(entries)
    if not entries:
        return result
    kinds = {e["kind"] for e in entries}
    deadline = time.monotonic() + timeout_s
    interval = poll_interval()
    errors: dict[tuple[str, str], str | None] = {}   # None: delete accepted; else last error
    first_look = True
    while True:
        try:
            inv = Listing.take(kinds)
        except Exception as exc:  # noqa: BLE001 -- cannot look, so nothing is verified gone
            result.left = [f"{_label(e)} (cannot list: {short(exc, 120)})" for e in entries]
            return result
        for entry in entries:
            if not inv.matches(entry, deployment):
                if first_look:
                    say(f"{'already gone' if entry.get('id') else 'never made'}: {_label(entry)}")
                if state is not None and entry in state.resources:
                    state.forget(entry)
        first_look = False
        live = _live_targets(entries, inv, deployment)
        if not live:
            return result
        if time.monotonic() >= deadline:
            result.left = [_label(t) + (f" ({errors[k]})" if errors.get(k := (t["kind"], t["id"])) else "")
                           for t in live]
            return result
        for target in live:
            key = (target["kind"], target["id"])
            if key in errors and errors[key] is None:
                continue  # accepted: waiting for it to go
            try:
                _delete(target)
            except Exception as exc:  # noqa: BLE001 -- keep going; the next look decides
                if _is_not_found(exc):
                    errors[key] = None
                    continue
                if key not in errors:
                    say(f"could not remove {_label(target)} yet: {short(exc, 160)}")
                errors[key] = short(exc, 160)
                continue
            errors[key] = None
            say(f"removed {_label(target)}")
            result.removed.append(_label(target))
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


def require_clean(result: Result, deployment: str, region: str, say: Callable[[str], None],
                  doing: str = "chi-down") -> None:
    if result.left:
        raise TeardownError(
            f"{doing} left {len(result.left)} resource(s) of {deployment} at {region}: "
            + "; ".join(result.left),
            hint="run chi-down again; if they stay, delete them in the Chameleon web UI")
    say(f"verified: nothing of {deployment} remains at {region}")
