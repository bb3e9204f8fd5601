"""What one prepare made, kept for the next: a manifest beside each artifact.

Repeats run every variant in fresh processes with one artifacts folder; quantising, converting
or exporting again in each would cost minutes and could give another model (INT8 tuning is not
deterministic across runs). So a variant that made an artifact writes ``<artifact>.manifest.json``
after it, holding what the artifact was made from (``key``), its size and sha256, and the info
the record shows. A later prepare with the same key serves the same file with the same info.

Trust is earned: a manifest whose key differs (another model, tolerance or profile), or whose
artifact is missing, truncated or altered (size or sha256), is ignored and the artifact remade.
The manifest is written last and atomically, so a prepare that died half-way leaves none.

An artifact that is more than one file (OpenVINO's IR: the .xml graph, the .bin weights beside
it) names the others as ``companions``: each is checked by size and sha256 like the artifact, so
a truncated .bin under an intact .xml is not served again.

Two variants may need one artifact (tflite and tflite-int8 both serve from the float ``.tflite``)
and prepare at once (suite.prepare_ahead): ``locked`` lets one make it while the other waits,
then finds its manifest and reuses it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..model import sha256_of as file_sha256
from ..results import jsonable, write_record

MANIFEST_SUFFIX = ".manifest.json"
_cache: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within this process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _cache:
        _cache[key] = file_sha256(path)
    return _cache[key]


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def source_key(variant_id: str, model: Path, **settings: Any) -> dict[str, Any]:
    """What an artifact depends on: the variant, the source model's bytes, and its settings."""
    return {"variant": variant_id, "source_sha256": sha256_of(model), **settings}


def _fingerprint(path: Path) -> dict[str, Any]:
    return {"size_bytes": path.stat().st_size, "sha256": sha256_of(path)}


def _intact(path: Path, recorded: dict[str, Any]) -> bool:
    # The size first: a truncated file is caught without reading it.
    return path.stat().st_size == recorded["size_bytes"] and sha256_of(path) == recorded["sha256"]


def reusable(artifact: Path, key: dict[str, Any],
             companions: Sequence[Path] = ()) -> dict[str, Any] | None:
    """The info saved with ``artifact`` when it was made from ``key`` and is intact, and so is
    each of its ``companions`` (files beside it, recorded by name); else None."""
    try:
        manifest = json.loads(manifest_path(artifact).read_text(encoding="utf-8"))
        if manifest.get("key") != json.loads(json.dumps(key)):
            return None
        if not _intact(artifact, manifest):
            return None
        recorded = manifest.get("companions", {})
        if set(recorded) != {c.name for c in companions}:
            return None
        if not all(_intact(c, recorded[c.name]) for c in companions):
            return None
        return manifest["info"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(artifact: Path, key: dict[str, Any], info: dict[str, Any],
             companions: Sequence[Path] = ()) -> dict[str, Any]:
    """Write the manifest of a finished artifact and its companions (after them, so a crash
    leaves none); returns ``info`` as the manifest holds it, so the first prepare and a reuse
    report alike."""
    info = jsonable(info)
    manifest = {"key": key, **_fingerprint(artifact), "info": info}
    if companions:
        manifest["companions"] = {c.name: _fingerprint(c) for c in companions}
    write_record(manifest_path(artifact), manifest)
    return info


def forget(artifact: Path) -> None:
    """Drop the manifest before remaking the artifact, so a half-made one is never trusted."""
    manifest_path(artifact).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(artifact: Path) -> Iterator[None]:
    """Hold ``.<artifact>.lock`` beside it (an advisory lock, released when the block ends or
    the process dies): check ``reusable`` and make the artifact inside it, so two processes that
    need the same artifact make it once. The empty lock file stays (removing it would race)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX (Windows), where the engine does not run
        yield
        return
    artifact.parent.mkdir(parents=True, exist_ok=True)
    with open(artifact.with_name(f".{artifact.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
