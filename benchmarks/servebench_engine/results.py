"""Writing result records (docs/RESULTS.md, schema_version 2; their fields: record.py) atomically.

A reader never sees half a file: each record goes to a temporary file in the same folder
(``.<name>.<random>.tmp``, which no reader matches as ``<variant>.json``), is flushed and
fsynced, then renamed over the final name, and the folder is fsynced so the rename survives a
power cut. A crash leaves at worst a stray ``.tmp``; the final name holds the old record or the
new one, never a mix.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2


def now_iso() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_json_atomic(path: Path, obj: Any) -> Path:
    path = Path(path)
    # The name first, then the file: SIGTERM/Ctrl-C raise at any bytecode, and one landing
    # inside mkstemp (after it made the file, before it returned the name) left the file behind.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # Whatever the umask: results are for everyone who reads the run folder.
            os.fchmod(f.fileno(), 0o644)
            json.dump(obj, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file: say which one
        raise
    _fsync_dir(path.parent)
    return path


def copy_atomic(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` through a temporary name beside it: a full disk leaves the old
    file or none, never a truncated one under the final name."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(dest)
        raise
    return dest


def jsonable(obj: Any) -> Any:
    """Plain JSON types only: variants put Paths, numpy scalars and tuples into ``info``, and a
    NaN is not JSON. One odd value must not cost the record (or the rest of the suite)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if callable(getattr(obj, "tolist", None)):  # numpy scalars and arrays
        return jsonable(obj.tolist())
    return str(obj)


def write_record(path: Path, record: dict) -> Path:
    return write_json_atomic(path, jsonable(record))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not every platform opens folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def record_key(model_name: str, variant: str, several: bool) -> str:
    """A record's key in suite.json and its file stem: the variant id with one model,
    ``<model>__<variant>`` with several (issue 12's contract)."""
    return f"{model_name}__{variant}" if several else variant
