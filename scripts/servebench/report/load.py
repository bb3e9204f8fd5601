"""Read one run folder (`results/<run-id>/`, layout in docs/RESULTS.md) into plain objects.

Reading never crashes on a bad record: a corrupt or newer-schema file becomes an `unreadable`
record with the reason, and a host that failed or left no records is shown failed, so the report
always says what happened on every host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

SCHEMA_VERSION = 1
RECORD_STATUSES = ("ok", "error", "skipped")
_HOST_FILES = ("host_status.json", "suite.json")
# Folders of a run that are not hosts.
_NOT_HOSTS = {"runner", "plots"}


@dataclass
class Record:
    variant: str
    status: str                    # ok | error | skipped | unreadable
    reason: str | None
    path: Path
    data: dict[str, Any] = field(default_factory=dict)  # the record as written (empty if unreadable)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Host:
    name: str
    kind: str
    status: str                    # ok | failed
    reason: str | None
    records: list[Record]
    notes: list[str]               # problems reading this host's files, shown in the report
    suite: dict[str, Any] | None

    @property
    def environment(self) -> dict[str, Any]:
        """The environment of the first readable record: all variants of a host share it."""
        for record in self.records:
            env = record.data.get("environment")
            if isinstance(env, dict) and env:
                return env
        return {}


@dataclass
class Run:
    run_id: str
    path: Path
    meta: dict[str, Any]           # run.json, or {} when absent or unreadable
    hosts: list[Host]
    notes: list[str]

    def records(self):
        """(host, record) for every record of every host, in report order."""
        for host in self.hosts:
            for record in host.records:
                yield host, record


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(document, None) or (None, why it cannot be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read: {exc}"
    except json.JSONDecodeError as exc:
        return None, f"corrupt JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"


def read_record(path: Path) -> Record:
    doc, problem = _read_json(path)
    if problem is None and not isinstance(doc, dict):
        problem = "not a JSON object"
    if problem is None:
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            problem = (f"schema_version {version!r} is not {SCHEMA_VERSION}: written by another "
                       "servebench version; update servebench to read it")
        elif doc.get("status") not in RECORD_STATUSES:
            problem = f"status {doc.get('status')!r} is not one of {', '.join(RECORD_STATUSES)}"
        elif not isinstance(doc.get("variant"), str):
            problem = "no variant id"
    if problem is not None:
        return Record(path.stem, "unreadable", f"{path.name}: {problem}", path)
    reason = doc.get("reason")
    if doc.get("error_type") and doc["status"] == "error":
        reason = f"{doc['error_type']}: {reason}"
    return Record(doc["variant"], doc["status"], reason, path, doc)


def _suite_variants(suite: Any) -> list[str]:
    """The variant ids suite.json says were asked for: a list of ids, a mapping id -> status, or
    a list of {"variant": id, ...} objects."""
    if not isinstance(suite, dict):
        return []
    asked = suite.get("variants")
    if isinstance(asked, dict):
        return [str(v) for v in asked]
    if isinstance(asked, list):
        return [str(v["variant"]) if isinstance(v, dict) and "variant" in v else str(v)
                for v in asked]
    return []


def read_host(folder: Path) -> Host:
    notes: list[str] = []
    status_doc, problem = _read_json(folder / "host_status.json")
    if problem is not None or not isinstance(status_doc, dict):
        notes.append(f"host_status.json: {problem or 'not a JSON object'}")
        status_doc = {}
    suite, problem = _read_json(folder / "suite.json")
    if problem is not None and problem != "missing":
        notes.append(f"suite.json: {problem}")
    if not isinstance(suite, dict):
        suite = None

    records = [read_record(p) for p in sorted(folder.glob("*.json")) if p.name not in _HOST_FILES]
    asked = _suite_variants(suite)
    seen = {r.variant for r in records}
    for variant in asked:
        if variant not in seen:
            records.append(Record(variant, "unreadable",
                                  f"suite.json lists {variant} but it left no record", folder))
    # The order the suite ran them in (the engine's, meaningful: baseline first), then the rest.
    order = {v: i for i, v in enumerate(asked)}
    records.sort(key=lambda r: (order.get(r.variant, len(order)), r.variant))

    kinds = {r.data.get("host_kind") for r in records if r.data.get("host_kind")}
    kind = status_doc.get("kind") or (kinds.pop() if len(kinds) == 1 else "unknown")
    status = "failed" if status_doc.get("status") == "failed" else "ok"
    reason = status_doc.get("reason") if status == "failed" else None
    if status == "ok" and not any(r.status != "unreadable" for r in records):
        status, reason = "failed", reason or "no readable variant records were collected"
    return Host(name=status_doc.get("host") or folder.name, kind=str(kind), status=status,
                reason=reason or ("host failed (no reason given)" if status == "failed" else None),
                records=records, notes=notes, suite=suite)


def _is_host_folder(path: Path) -> bool:
    return path.is_dir() and path.name not in _NOT_HOSTS and any(path.glob("*.json"))


def load_run(run_dir: Path) -> Run:
    """Read `run_dir` (a symlink such as results/latest is followed)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} not found",
                         hint="pass results/<run-id> or results/latest")
    resolved = run_dir.resolve()
    notes: list[str] = []
    meta, problem = _read_json(resolved / "run.json")
    if problem is not None and problem != "missing":
        notes.append(f"run.json: {problem}")
    if not isinstance(meta, dict):
        meta = {}

    host_dirs = [p for p in sorted(resolved.iterdir()) if _is_host_folder(p)]
    # Only a folder the collect play made: refuse to write a report into any folder with JSON.
    if not meta and problem == "missing" and not any(
            (p / "host_status.json").exists() for p in host_dirs):
        raise UsageError(f"{run_dir} is not a run folder (no run.json, no <host>/host_status.json)",
                         hint="pass results/<run-id> or results/latest")
    hosts = [read_host(p) for p in host_dirs]
    present = {h.name for h in hosts} | {p.name for p in resolved.iterdir()}
    for name in _listed_hosts(meta):
        if name not in present:
            hosts.append(Host(name=name, kind="unknown", status="failed",
                              reason="run.json lists this host but no results were collected",
                              records=[], notes=[], suite=None))
    if not hosts:
        raise UsageError(f"{run_dir} holds no host results (no <host>/*.json)",
                         hint="is it a run folder? pass results/<run-id> or results/latest")
    return Run(run_id=str(meta.get("run_id") or resolved.name), path=resolved, meta=meta,
               hosts=hosts, notes=notes)


def _listed_hosts(meta: dict) -> list[str]:
    """Host names from run.json's `hosts`: a list of names or of {"name"/"host": ...}."""
    listed = meta.get("hosts")
    if isinstance(listed, dict):
        return [str(h) for h in listed]
    if not isinstance(listed, list):
        return []
    names = []
    for item in listed:
        if isinstance(item, dict):
            item = item.get("name") or item.get("host")
        if item:
            names.append(str(item))
    return names
