"""chi-extend: a longer lease, through Blazar's lease update (``prolong_for``), and the
inventory's ``lease_end`` moved with it (the plan reads it to decide whether a run fits).

Blazar refuses an extension when the lease's node (or device) is reserved by another lease in
the added time (NotEnoughHostsAvailable): then nothing changes, and the error says so (exit 4).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from servebench.errors import ProvisionError, StateError

from . import inventory, lease
from .cloud import failure, short
from .sites import get_site
from .state import State

_EXTENDABLE = ("ACTIVE", "PENDING")


def _fmt(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _cost(state: State, by: timedelta) -> str:
    """What the added hours cost, from the rate table; empty when the node type is not known."""
    from servebench import cost

    node_type = state.data.get("node_type")
    if not node_type:
        return ""
    estimate = cost.lease_estimate(node_type, get_site(state.identity.site).region,
                                   by.total_seconds() / 3600)
    return f"; the added time costs {cost.describe(estimate)}"


def extend(state: State, by: timedelta, say: Callable[[str], None]) -> datetime:
    """Extend the state's lease by ``by``; return its new end (UTC)."""
    entry = next((e for e in state.of_kind("lease") if e.get("id")), None)
    if entry is None:
        raise StateError(f"{state.path} holds no lease of {state.name}",
                         hint="run chi-up first; chi-extend extends the lease it made")
    name, delta = state.name, lease.format_duration(by)
    try:
        before = lease.get_lease(entry["id"])
    except Exception as exc:  # noqa: BLE001 -- python-chi and clients raise anything
        raise failure(f"reading lease {name}", exc) from None
    status = before.get("status")
    if status not in _EXTENDABLE:
        raise ProvisionError(f"lease {name} is {status}: only an ACTIVE or PENDING lease can be "
                             "extended", hint="chi-down, then chi-up a new lease")
    _, old_end = lease.lease_dates(before)
    cost_text = _cost(state, by)  # a bad rate table stops here, before anything changes
    say(f"extending lease {name} by {delta} (it ends {_fmt(old_end)})")
    try:
        lease.prolong(entry["id"], by)
    except Exception as exc:  # noqa: BLE001 -- python-chi and clients raise anything
        if lease.is_not_enough(exc):
            raise ProvisionError(
                f"Blazar refused to extend lease {name} by {delta} ({short(exc, 120)}): its "
                f"node is reserved by another lease after {_fmt(old_end)}; the lease is unchanged",
                hint="try a shorter --by, or chi-down and chi-up a new lease") from None
        raise failure(f"extending lease {name}", exc,
                      hint="the lease is as it was; check chi-status, then try again") from None
    try:
        _, new_end = lease.lease_dates(lease.get_lease(entry["id"]))
    except Exception as exc:  # noqa: BLE001
        raise failure(f"reading lease {name} after extending it", exc,
                      hint="chi-status shows its end") from None
    _follow_in_inventory(state, new_end, say)
    now = datetime.now(timezone.utc)
    say(f"extended lease {name}: it ends {_fmt(new_end)} (was {_fmt(old_end)}), "
        f"{lease.format_remaining(new_end, now)}{cost_text}")
    return new_end


def _follow_in_inventory(state: State, new_end: datetime, say: Callable[[str], None]) -> None:
    recorded = state.data.get("inventory")
    if not recorded:
        return
    path = Path(recorded)
    if inventory.set_lease_end(path, state.name, new_end.isoformat(timespec="minutes")):
        say(f"inventory {path}: lease_end {new_end.isoformat(timespec='minutes')}")
    elif path.exists():
        say(f"left {path} as it was: {inventory.not_ours(path, state.name)}, so not the "
            f"inventory chi-up wrote for {state.name}")
