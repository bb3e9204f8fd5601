"""The state file: what one deployment made, so chi-down can remove exactly that.

Every resource is recorded the moment we ask for it (by name, before its id is known) and again
the moment its id exists, before any wait: a crash, a hang or Ctrl-C at any point leaves a
file that still names everything. The file is 0600 and replaced atomically (temporary file,
fsync, rename). It names the project, site and Keystone endpoint it belongs to, so credentials
for another project are refused instead of deleting the wrong things. It holds ids, names,
addresses and paths: never a password, secret or token.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from servebench.errors import StateError
from servebench.files import write_private

STATE_VERSION = 1
STATE_DIR = Path(".servebench")

# Kinds of resources, in the order chi-down removes them.
KINDS = ("container", "server", "floating_ip", "lease")


def instance_name(deployment: str) -> str:
    """The server or container a deployment makes; Nova names become host names (no '_')."""
    return "node-" + deployment.replace("_", "-").replace(".", "-")


def default_path(name: str, base: Path | None = None) -> Path:
    return (base or Path.cwd()) / STATE_DIR / f"state-{name}.json"


def lock_path(name: str, base: Path | None = None) -> Path:
    return (base or Path.cwd()) / STATE_DIR / f"state-{name}.lock"


@contextlib.contextmanager
def locked(name: str, base: Path | None = None):
    """Hold the lock of deployment ``name`` (an flock on .servebench/state-<name>.lock) or fail
    at once: two chi-up/chi-down of one name at a time would each act on a stale state file.
    The lock file goes when the deployment's state file has gone."""
    path = lock_path(name, base)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"another chi-up or chi-down is working on {name} ({path} is locked)",
                             hint="wait for it to finish, then run the command again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder removed the file as we opened it: take the new one
    else:
        raise StateError(f"cannot lock {path}", hint="run the command again")
    try:
        yield
    finally:
        if not default_path(name, base).exists():
            path.unlink(missing_ok=True)
        os.close(fd)


def state_files(base: Path | None = None) -> list[Path]:
    folder = (base or Path.cwd()) / STATE_DIR
    return sorted(folder.glob("state-*.json")) if folder.is_dir() else []


@dataclass(frozen=True)
class Identity:
    """Where a deployment lives: checked against the credentials in use before any change."""

    site: str
    region: str
    auth_url: str
    project_id: str
    project_name: str | None = None

    def describe(self) -> str:
        project = self.project_name or self.project_id
        return f"project {project} at {self.region} ({self.auth_url})"


def _show(value) -> str:
    """A value from a bad state file, short enough for one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fields_problem(where: str, record, fields: dict, required: set[str]) -> str | None:
    """What is wrong with ``record`` (a dict of ``fields``: name -> accepted types), if anything."""
    if not isinstance(record, dict):
        return f"{where} is {_show(record)}, not a mapping"
    missing = sorted(required - set(record))
    if missing:
        return f"{where} has no {missing[0]}"
    for key, value in record.items():
        # No field is a bool, and bool is an int to isinstance: a port of `true` is refused.
        if key in fields and (isinstance(value, bool) or not isinstance(value, fields[key])):
            return f"{where}.{key} is {_show(value)}"
    return None


_IDENTITY = {"site": str, "region": str, "auth_url": str, "project_id": str,
             "project_name": (str, type(None))}
_RESOURCE = {"kind": str, "name": (str, type(None)), "id": (str, type(None)), "run": str,
             "address": (str, type(None))}
_SSH = {"host": str, "user": str, "port": int, "key": str}


def _problem(data: dict) -> str | None:
    """Why ``data`` cannot be a state file chi-up wrote: every field the commands read is
    checked here, so a hand-edited or hostile file is one line (exit 3), never a TypeError."""
    from .lease import NAME_RE
    from .sites import SITES

    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return f"name is {_show(name)}, not a deployment name" if "name" in data else "no name"
    identity = data["identity"]
    problem = _fields_problem("identity", identity, _IDENTITY, set(_IDENTITY) - {"project_name"})
    if problem:
        return problem
    if set(identity) - set(_IDENTITY):
        return f"identity has unknown field {sorted(set(identity) - set(_IDENTITY))[0]!r}"
    if identity["site"] not in SITES:
        return f"identity.site is {_show(identity['site'])}, not one of {', '.join(SITES)}"
    resources = data.get("resources")
    if not isinstance(resources, list):
        return f"resources is {_show(resources)}, not a list"
    for i, entry in enumerate(resources):
        problem = _fields_problem(f"resources[{i}]", entry, _RESOURCE, {"kind", "name"})
        if problem:
            return problem
        if entry["kind"] not in KINDS:
            return f"resources[{i}].kind is {_show(entry['kind'])}, not one of {', '.join(KINDS)}"
    for key in ("inventory", "known_hosts"):
        if key in data and not isinstance(data[key], str):
            return f"{key} is {_show(data[key])}, not a path"
    if not isinstance(data.get("node_type"), (str, type(None))):
        return f"node_type is {_show(data['node_type'])}"
    if "ssh" in data:
        return _fields_problem("ssh", data["ssh"], _SSH, set(_SSH))
    return None


class State:
    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data

    # -- creation, loading, saving ---------------------------------------------------------

    @classmethod
    def new(cls, path: Path, name: str, identity: Identity) -> "State":
        return cls(path, {
            "version": STATE_VERSION,
            "name": name,
            "identity": identity.__dict__.copy(),
            "resources": [],
        })

    @classmethod
    def load(cls, path: Path) -> "State":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StateError(f"no state file at {path}",
                             hint="pass --state PATH, or --name NAME --site SITE") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"state file {path} is unreadable: {exc}",
                             hint="fix or remove it; chi-down --name NAME --site SITE works without it") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION or "identity" not in data:
            raise StateError(f"{path} is not a servebench state file (version {STATE_VERSION})")
        problem = _problem(data)
        if problem:
            raise StateError(f"state file {path} is malformed: {problem}",
                             hint="fix or remove it; chi-down --name NAME --site SITE works without it")
        return cls(path, data)

    def save(self) -> None:
        self.data["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_private(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    # -- identity --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def identity(self) -> Identity:
        return Identity(**self.data["identity"])

    def check_identity(self, current: Identity) -> None:
        """Refuse to act on a deployment of another project, site or Keystone endpoint."""
        mine = self.identity
        if (mine.site, mine.region, mine.auth_url.rstrip("/"), mine.project_id) != (
                current.site, current.region, current.auth_url.rstrip("/"), current.project_id):
            raise StateError(
                f"state file {self.path} belongs to {mine.describe()}, "
                f"but these credentials are for {current.describe()}",
                hint="source that project's openrc, or pass another --name/--state")

    # -- resources -------------------------------------------------------------------------

    @property
    def resources(self) -> list[dict]:
        return self.data["resources"]

    def of_kind(self, kind: str) -> list[dict]:
        return [r for r in self.resources if r["kind"] == kind]

    def record(self, kind: str, name: str, run: str, **fields) -> dict:
        """Write down a resource we are about to ask for (id unknown yet), and save."""
        if kind not in KINDS:
            raise ValueError(kind)
        entry = {"kind": kind, "name": name, "id": None, "run": run, **fields}
        self.resources.append(entry)
        self.save()
        return entry

    def update(self, entry: dict, **fields) -> None:
        entry.update(fields)
        self.save()

    def forget(self, entry: dict) -> None:
        self.resources.remove(entry)
        self.save()

    def set(self, key: str, value) -> None:
        self.data[key] = value
        self.save()
