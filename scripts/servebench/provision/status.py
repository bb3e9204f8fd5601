"""chi-status: the lease window and time left, each resource and its state, whether SSH answers.
Reads only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from . import container, lease
from .cloud import short
from .ssh import SshTarget, run_command
from .state import State
from .teardown import Listing


def report(state: State, say: Callable[[str], None]) -> bool:
    """Print the deployment's status; True when every resource exists and SSH answers."""
    from chi.clients import blazar, nova, zun

    identity = state.identity
    say(f"{state.name}: {identity.describe()}")
    healthy = True
    inv = Listing.take({e["kind"] for e in state.resources})
    now = datetime.now(timezone.utc)
    for entry in state.resources:
        kind, label = entry["kind"], entry.get("name")
        if not inv.matches(entry, state.name):
            say(f"  {kind.replace('_', ' ')} {label}: gone")
            healthy = False
            continue
        try:
            if kind == "lease":
                found = blazar().lease.get(entry["id"])
                start, end = lease.lease_dates(found)
                window = lease.LeaseWindow(start, end, now).describe()
                say(f"  lease {label}: {found.get('status')}, {window}, "
                    f"{lease.format_remaining(end, now)}")
                say(f"  time left: {lease.format_duration(max(end - now, timedelta(0)))} "
                    f"(until {end:%Y-%m-%d %H:%M} UTC; chi-extend --by DURATION adds more)")
                healthy &= found.get("status") == "ACTIVE" and end > now
            elif kind == "server":
                status = nova().servers.get(entry["id"]).status
                say(f"  server {label}: {status}")
                healthy &= status == "ACTIVE"
            elif kind == "container":
                status = zun().containers.get(entry["id"]).status
                say(f"  container {label}: {status}")
                healthy &= status == "Running"
            else:
                live = next(f for f in inv.floating_ips if f["id"] == entry["id"])
                say(f"  floating IP {live['address']}: allocated")
        except Exception as exc:  # noqa: BLE001 -- a status line, not a failure
            say(f"  {kind.replace('_', ' ')} {label}: unknown ({short(exc, 120)})")
            healthy = False
    ssh = state.data.get("ssh")
    if ssh:
        target = SshTarget(ssh["host"], ssh["user"], int(ssh["port"]), Path(ssh["key"]))
        ok, why = run_command(target, timeout_s=10)
        say(f"  ssh {target.describe()}: {'answers' if ok else f'does not answer ({why})'}")
        healthy &= ok
        if not ok:
            _explain_container(state, say)
    else:
        say("  ssh: not set up yet (chi-up did not finish)")
        healthy = False
    if state.data.get("inventory"):
        say(f"  inventory: {state.data['inventory']}")
    return healthy


def _explain_container(state: State, say: Callable[[str], None]) -> None:
    """Why an edge container does not answer SSH: a pod restart leaves a fresh file system."""
    for entry in [e for e in state.of_kind("container") if e.get("id")]:
        try:
            found = container.bootstrap_state(entry["id"])
        except Exception as exc:  # noqa: BLE001 -- a status line, not a failure
            say(f"  container {entry.get('name')}: cannot look inside ({short(exc, 120)})")
            continue
        if found == "absent":
            say(f"  container {entry.get('name')}: its file system was reset (a pod restart "
                "drops sshd and the key); chi-up with the same --name sets SSH up again")
        else:
            say(f"  container {entry.get('name')}: SSH bootstrap {found}")
