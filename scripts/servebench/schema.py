"""The one schema of a run folder (results.schema.json beside this file, docs/RESULTS.md in
prose): what servebench.collect writes and what bench-report accepts, nothing else."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
# What the files are called in the schema's $defs.
KINDS = ("run", "host_status", "suite", "record")


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


SCHEMA_VERSION: int = _schema()["$defs"]["schema_version"]["const"]
HOST_KINDS: tuple[str, ...] = tuple(_schema()["$defs"]["host_kind"]["enum"])


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    if kind not in KINDS:
        raise ValueError(f"no schema for {kind!r} (one of {', '.join(KINDS)})")
    schema = {"$ref": f"#/$defs/{kind}", **_schema()}
    return jsonschema.Draft202012Validator(schema)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number (JSON has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large for a number")
    return value


def loads(text: str) -> Any:
    """json.loads without what Python's json reads but JSON does not allow: NaN, Infinity and
    numbers that overflow a float raise ValueError, where a file is read, so no figure of a run
    is ever non-finite."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def problem(kind: str, doc: Any) -> str | None:
    """None if ``doc`` is a valid ``kind``, else one line naming the first place it is not."""
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "the document"
    message = " ".join(first.message.split())
    return f"{where}: {message[:200]}"


def version_problem(doc: Any, recollect: str) -> str | None:
    """None if ``doc`` has this SCHEMA_VERSION, else why it cannot be read and what to do:
    ``recollect`` (how to write it again) for an older one, an update for a newer one."""
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version == SCHEMA_VERSION:
        return None
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        return (f"schema_version {version} is newer than {SCHEMA_VERSION}, the one this servebench "
                "reads: update servebench to read it")
    return (f"schema_version {version!r} is older than {SCHEMA_VERSION}, the one this servebench "
            f"reads: {recollect}")
