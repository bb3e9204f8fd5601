"""The lease: its time window, its reservation, and finding, creating and waiting on it.

Window maths is pure (tested without a testbed). Talking to Blazar goes through python-chi's
``Lease`` object to build the reservation, but the create request goes through python-chi's
Blazar client directly: ``Lease.submit`` / ``chi.lease.create_lease`` swallow Blazar's error
("not enough hosts available") into a log line and raise a bare "Unable to make lease".
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from servebench.errors import ProvisionError, UsageError

from .sites import Site
from .waiting import wait_for

BLAZAR_TIME_FORMAT = "%Y-%m-%d %H:%M"      # what Blazar accepts on create (UTC)
MIN_DURATION = timedelta(minutes=10)
MAX_DURATION = timedelta(days=7)           # Chameleon's longest lease
_DURATION_RE = re.compile(
    r"^\s*(?:(?P<d>\d+(?:\.\d+)?)\s*d)?\s*(?:(?P<h>\d+(?:\.\d+)?)\s*h)?\s*(?:(?P<m>\d+)\s*m(?:in)?)?\s*$",
    re.IGNORECASE)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: "$" would let a "\n" end it


# ---------------------------------------------------------------------------------------------
# Pure parts: names, durations, windows.

def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"bad --name {name!r}: use up to 64 letters, digits, '_', '.' or '-'")
    return name


def user_slug(user: str) -> str:
    slug = re.sub(r"[^a-z0-9]", "", user.lower())
    return slug or "user"


def parse_duration(text: str, option: str = "--duration") -> timedelta:
    """``3h``, ``90m``, ``2h30m``, ``1d``, or a bare number of hours."""
    bad = UsageError(f"bad {option} {text!r}: use hours and minutes like 3h, 90m or 2h30m "
                     f"(between {format_duration(MIN_DURATION)} and {format_duration(MAX_DURATION)})")
    text = text.strip()
    try:
        value = timedelta(hours=float(text)) if re.fullmatch(r"\d+(?:\.\d+)?", text) else None
    except OverflowError:
        raise bad from None
    except ValueError:
        value = None
    if value is None:
        match = _DURATION_RE.match(text)
        if not text or not match or not any(match.groupdict().values()):
            raise bad
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        try:
            value = timedelta(days=parts.get("d", 0), hours=parts.get("h", 0),
                              minutes=parts.get("m", 0))
        except OverflowError:
            raise bad from None
    if not MIN_DURATION <= value <= MAX_DURATION:
        raise bad
    return value


def parse_start(text: str) -> datetime | None:
    """``now`` (None) or an ISO time; a time without a zone is local time. Returns UTC."""
    if text.strip().lower() == "now":
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad --start {text!r}: use now or an ISO time like 2026-11-23T14:00 "
                         "(local time) or 2026-11-23T14:00Z (UTC)") from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local wall-clock time, as the user reads it
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise UsageError(f"bad --start {text!r}: out of range") from None


@dataclass(frozen=True)
class LeaseWindow:
    start: datetime | None    # None: Blazar starts the lease now
    end: datetime             # UTC
    now: datetime             # when the window was computed

    @property
    def effective_start(self) -> datetime:
        return self.start or self.now

    @property
    def blazar_start(self) -> str:
        return "now" if self.start is None else self.start.strftime(BLAZAR_TIME_FORMAT)

    @property
    def blazar_end(self) -> str:
        return self.end.strftime(BLAZAR_TIME_FORMAT)

    def describe(self) -> str:
        start = "now" if self.start is None else _fmt_dt(self.start)
        return f"{start} -> {_fmt_dt(self.end)} ({format_duration(self.end - self.effective_start)})"


def compute_window(start: datetime | None, duration: timedelta, now: datetime,
                   start_on_hour: bool = False, end_before_hour: bool = False) -> LeaseWindow:
    """The lease window, with the tutorial's habits as options.

    ``start_on_hour`` moves the start up to the next full hour (unless it is on one already);
    ``end_before_hour`` ends the lease five minutes before the full hour at or before
    start + duration, so back-to-back leases of the same node never overlap.
    """
    try:
        return _compute_window(start, duration, now, start_on_hour, end_before_hour)
    except OverflowError:
        raise UsageError(f"--start {_fmt_dt(start or now)} plus --duration {format_duration(duration)} is "
                         "past the year 9999: use a nearer --start") from None


def _compute_window(start: datetime | None, duration: timedelta, now: datetime,
                    start_on_hour: bool, end_before_hour: bool) -> LeaseWindow:
    if start is not None and start < now - timedelta(minutes=1):
        raise UsageError(f"--start {_fmt_dt(start)} is in the past: use now or a later time")
    if start_on_hour:
        base = start or now
        floored = base.replace(minute=0, second=0, microsecond=0)
        start = floored if floored == base else floored + timedelta(hours=1)
    begin = start or now
    end = begin + duration
    if end_before_hour:
        end = end.replace(minute=0, second=0, microsecond=0) - timedelta(minutes=5)
        if end - begin < MIN_DURATION:
            raise UsageError(
                f"--end-before-hour leaves {format_duration(max(end - begin, timedelta(0)))} of a "
                f"{format_duration(duration)} lease starting {_fmt_dt(begin)}: use a longer --duration")
    return LeaseWindow(start=start, end=end, now=now)


def _fmt_dt(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{mins:02d}m" if mins else "")
    return text or "0m"


def format_remaining(end: datetime, now: datetime) -> str:
    return "ended" if end <= now else f"{format_duration(end - now)} left"


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Blazar.

@dataclass(frozen=True)
class Reservation:
    """What to reserve: a node type or node name (servers), a machine type or device (edge)."""

    site: Site
    node_type: str | None = None
    node_name: str | None = None
    device: str | None = None

    def describe(self) -> str:
        if self.site.is_edge:
            if self.device:
                return f"device {self.device}"
            return f"1 device of machine type {self.site.machine_type}"
        if self.node_name:
            return f"node {self.node_name}"
        return f"1 node of type {self.node_type or self.site.node_type}"

    def requests(self, lease_name: str, window: LeaseWindow) -> list[dict]:
        """The Blazar reservation list, built by python-chi's own helpers."""
        import chi.lease

        lease = chi.lease.Lease(lease_name, start_date=window.start, end_date=window.end)
        if self.site.is_edge:
            if self.device and is_uuid(self.device):
                # python-chi reserves devices by name or machine type only; Blazar also knows
                # each device by its hardware uuid.
                return [{"resource_type": "device", "min": 1, "max": 1,
                         "resource_properties": json.dumps(["==", "$uid", self.device])}]
            if self.device:
                lease.add_device_reservation(amount=1, device_name=self.device)
            else:
                lease.add_device_reservation(amount=1, machine_type=self.site.machine_type)
            return lease.device_reservations
        if self.node_name:
            lease.add_node_reservation(amount=1, node_name=self.node_name)
        else:
            lease.add_node_reservation(amount=1, node_type=self.node_type or self.site.node_type)
        return lease.node_reservations


def find_lease(name: str) -> dict | None:
    """The live (not TERMINATED) lease of that name, or None; several is an error."""
    from chi.clients import blazar

    found = [lease for lease in blazar().lease.list()
             if lease.get("name") == name and lease.get("status") not in ("TERMINATED", "DELETED")]
    if len(found) > 1:
        raise ProvisionError(f"{len(found)} leases are named {name!r}",
                             hint="delete the extra ones, or pass another --name")
    return found[0] if found else None


def is_name_clash(exc: BaseException) -> bool:
    """Blazar's 409 for a name in use (``LeaseNameAlreadyExists``)."""
    codes = {getattr(exc, "code", None), getattr(exc, "status_code", None),
             (getattr(exc, "kwargs", None) or {}).get("code")}
    return 409 in codes and "already exists" in str(exc).lower()


def current_user_id() -> str | None:
    """The Keystone user of the credentials in use."""
    from chi import context

    return context.session().get_user_id()


def create_lease(name: str, reservations: list[dict], window: LeaseWindow) -> dict:
    from chi.clients import blazar

    return blazar().lease.create(name=name, start=window.blazar_start, end=window.blazar_end,
                                 reservations=reservations, events=[])


def prolong(lease_id: str, by: timedelta) -> dict:
    """Blazar's lease update by ``prolong_for`` (python-chi 1.2.10 has no extend call of its
    own): the client reads the lease's end and asks for that end plus ``by``, whole minutes."""
    from chi.clients import blazar

    return blazar().lease.update(lease_id, prolong_for=f"{int(by.total_seconds() // 60)}m")


def is_not_enough(exc: BaseException) -> bool:
    """Blazar's NotEnoughHostsAvailable: the hosts (or devices) are reserved in that time."""
    return "not enough" in str(exc).lower()


def lease_dates(lease: dict) -> tuple[datetime, datetime]:
    """Start and end of a lease as Blazar reports them (``2026-11-22T14:00:00.000000``, UTC)."""
    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "")).replace(tzinfo=timezone.utc)
    return parse(lease["start_date"]), parse(lease["end_date"])


def reservation_id(lease: dict, resource_type: str) -> str:
    reservations = lease.get("reservations") or []
    if isinstance(reservations, str):  # some Blazar versions nest it as a JSON string
        reservations = json.loads(reservations)
    for res in reservations:
        if res.get("resource_type") == resource_type:
            return res["id"]
    raise ProvisionError(f"lease {lease.get('name')!r} has no {resource_type} reservation",
                         hint="pass another --name; that lease was made for something else")


def get_lease(lease_id: str) -> dict:
    from chi.clients import blazar

    return blazar().lease.get(lease_id)


def wait_active(lease_id: str, name: str, timeout_s: float, say: Callable[[str], None]) -> dict:
    latest: dict = {}

    def probe() -> tuple[bool, str]:
        latest.update(get_lease(lease_id))
        status = latest.get("status", "?")
        if status in ("ERROR", "TERMINATED", "TERMINATING", "DELETED"):
            raise ProvisionError(f"lease {name!r} went {status} instead of ACTIVE",
                                 hint="the site could not honour it; try another time or node")
        return status == "ACTIVE", status

    wait_for(f"lease {name}", probe, timeout_s, say,
             hint="the lease did not start; check its start time, or raise --wait-timeout")
    return latest
