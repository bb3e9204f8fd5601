"""Read one run folder (`results/<run-id>/`, layout in docs/RESULTS.md) into plain objects.

Every file is checked against the one schema (servebench.schema) that servebench.collect and the
engine write: nothing else is accepted. A run.json of an older schema_version refuses the whole
run (one line saying how to collect it again). Otherwise reading never crashes on a bad file: a
record that does not match becomes an `unreadable` record with the reason, a bad host file a
note, and a host that failed or left no records is shown failed, so the report always says what
happened on every host.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from ..schema import loads, problem as schema_problem, version_problem

_HOST_FILES = ("host_status.json", "suite.json")
# Folders of a run that are not hosts.
_NOT_HOSTS = {"runner", "plots", "compare"}
# The measured figures of a record: all finite and >= 0, or the record is unreadable (a
# negative size or a NaN p50 is a broken record, never a result to judge or compare).
FIGURES = ("latency_ms", "batch_latency_ms", "model_size_bytes", "batch_throughput",
           "single_fps_from_p50", "single_fps_trials", "cold_start_ms", "accuracy", "repeats",
           "samples")


def read_at(*path: str) -> Callable[[dict], Any]:
    """The value at ``path`` in a record (``read_at("latency_ms", "p50")``), None when absent."""
    def read(data: dict) -> Any:
        value: Any = data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return read


@dataclass
class Record:
    variant: str
    status: str                    # ok | error | skipped | unreadable
    reason: str | None
    path: Path
    data: dict[str, Any] = field(default_factory=dict)  # the record as written (empty if unreadable)
    key: str = ""                  # the record key: the variant, or <model>__<variant>
    model_name: str | None = None  # an unreadable record's model, where its file says

    def __post_init__(self) -> None:
        self.key = self.key or self.variant

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def model(self) -> str | None:
        """The model's name (its file stem), or None when the record does not say."""
        model = self.data.get("model")
        name = model.get("name") if isinstance(model, dict) else self.model_name
        return str(name) if name else None


@dataclass
class Host:
    name: str
    kind: str
    status: str                    # ok | failed
    reason: str | None
    records: list[Record]
    notes: list[str]               # problems reading this host's files, shown in the report
    suite: dict[str, Any] | None
    # The inventory's site and node_type (run.json's host entry): what servebench.cost prices
    # the host by; None for localhost and runs collected before they were recorded.
    site: str | None = None
    node_type: str | None = None

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

    @property
    def models(self) -> list[str]:
        """The model names of the run's records, in first-seen order."""
        return list(dict.fromkeys(r.model for _, r in self.records() if r.model))

    def label(self, record: Record) -> str:
        """What the report calls a record: its variant, prefixed by its model when the run
        has several."""
        several = len(self.models) > 1
        return f"{record.model} / {record.variant}" if several and record.model else record.variant


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(document, None) or (None, why it cannot be read)."""
    try:
        return loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read: {exc}"
    except json.JSONDecodeError as exc:
        return None, f"corrupt JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    except ValueError as exc:  # NaN, Infinity, a number too large (schema.loads)
        return None, f"not a valid figure: {exc}"


def _bad_figure(value: Any, where: str) -> str | None:
    """Where the first negative or non-finite number under ``value`` is, or None."""
    if isinstance(value, dict):
        return next(filter(None, (_bad_figure(v, f"{where}.{k}") for k, v in value.items())),
                    None)
    if isinstance(value, list):
        return next(filter(None, (_bad_figure(v, f"{where}[{i}]") for i, v in enumerate(value))),
                    None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        good = math.isfinite(float(value)) and value >= 0
    except OverflowError:
        good = False
    return None if good else (f"{where} is {ascii(value)[:40]}, not a figure (a finite number "
                              ">= 0): the record is not judged or compared")


def _read_valid(path: Path, kind: str, again: str) -> tuple[Any, str | None]:
    """(document, None) if ``path`` is a valid ``kind``, else (None, why not); ``again`` says how
    to write an older one anew."""
    doc, problem = _read_json(path)
    if problem is None:
        problem = version_problem(doc, again) or schema_problem(kind, doc)
    return (None, problem) if problem else (doc, None)


def read_record(path: Path) -> Record:
    doc, problem = _read_valid(path, "record", "benchmark the variant again")
    if problem is not None:
        return Record(path.stem, "unreadable", f"{path.name}: {problem}", path)
    bad = next(filter(None, (_bad_figure(doc.get(k), k) for k in FIGURES)), None)
    if bad is not None:
        return Record(doc["variant"], "unreadable", f"{path.name}: {bad}", path, key=path.stem,
                      model_name=(doc["model"].get("name") or None))
    reason = doc.get("reason")
    if doc.get("error_type") and doc["status"] == "error":
        reason = f"{doc['error_type']}: {reason}"
    return Record(doc["variant"], doc["status"], reason, path, doc, key=path.stem)


def _asked(suite: dict | None) -> list[str]:
    """The record keys a host's suite.json says it ran, in the engine's order: the variant ids
    with one model, <model>__<variant> with several (the issue 12 contract), then any other key
    its results hold."""
    if not suite:
        return []
    models = suite.get("models") or []
    variants = suite["variants"]
    keys = [f"{m}__{v}" for m in models for v in variants] if len(models) > 1 else list(variants)
    return list(dict.fromkeys(keys + list(suite["results"])))


def read_host(folder: Path, recollect: str) -> Host:
    notes: list[str] = []
    status_doc, problem = _read_json(folder / "host_status.json")
    if problem is None:
        problem = schema_problem("host_status", status_doc)
    if problem is not None:
        notes.append(f"host_status.json: {problem}")
        status_doc = {}
    suite, problem = _read_valid(folder / "suite.json", "suite", recollect)
    if problem is not None and problem != "missing":
        notes.append(f"suite.json: {problem}")

    records = [read_record(p) for p in sorted(folder.glob("*.json")) if p.name not in _HOST_FILES]
    asked = _asked(suite)
    seen = {r.key for r in records}
    for key in asked:
        if key not in seen:
            # A key whose results entry is null: the run never got to it.
            variant = key.split("__", 1)[1] if "__" in key and key not in suite["variants"] else key
            records.append(Record(variant, "unreadable",
                                  f"suite.json lists {key} but it left no record", folder,
                                  key=key))
    # The order the suite ran them in (the engine's, meaningful: baseline first), then the rest.
    order = {k: i for i, k in enumerate(asked)}
    records.sort(key=lambda r: (order.get(r.key, len(order)), r.key))

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
    # A linked folder is not read: servebench.collect never writes through one (run.json
    # says why that host failed).
    return (path.is_dir() and not path.is_symlink() and path.name not in _NOT_HOSTS
            and any(path.glob("*.json")))


def load_run(run_dir: Path) -> Run:
    """Read `run_dir` (a symlink such as results/latest is followed)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} not found",
                         hint="pass results/<run-id> or results/latest")
    resolved = run_dir.resolve()
    notes: list[str] = []
    recollect = (f"collect it again: ansible-playbook -i INVENTORY bench.yml --tags collect "
                 f"-e run_id={resolved.name}")
    meta, problem = _read_json(resolved / "run.json")
    if problem is None:
        old = version_problem(meta, recollect)
        if old:
            raise UsageError(f"{run_dir}/run.json: {old}")
        problem = schema_problem("run", meta)
        if problem is not None:
            meta = None
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
    hosts = [read_host(p, recollect) for p in host_dirs]
    present = {h.name for h in hosts} | {p.name for p in host_dirs}
    entries = {entry["host"]: entry for entry in meta.get("hosts", [])}
    for host in hosts:
        entry = entries.get(host.name, {})
        host.site, host.node_type = entry.get("site"), entry.get("node_type")
    for entry in meta.get("hosts", []):
        if entry["host"] not in present:
            failed = entry["status"] == "failed" and entry["reason"]
            hosts.append(Host(name=entry["host"], kind=entry["kind"], status="failed",
                              reason=entry["reason"] if failed else
                              "run.json lists this host but no results were collected",
                              records=[], notes=[], suite=None, site=entry.get("site"),
                              node_type=entry.get("node_type")))
    if not hosts:
        raise UsageError(f"{run_dir} holds no host results (no <host>/*.json)",
                         hint="is it a run folder? pass results/<run-id> or results/latest")
    return Run(run_id=str(meta.get("run_id") or resolved.name), path=resolved, meta=meta,
               hosts=hosts, notes=notes)
