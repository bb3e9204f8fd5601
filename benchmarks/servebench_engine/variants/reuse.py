"""What one prepare made, kept for the next: a manifest beside each artifact.

Repeats run every variant in fresh processes with one artifacts folder; quantising, converting
or exporting again in each would cost minutes and could give another model (INT8 tuning is not
deterministic across runs). So a variant that made an artifact writes ``<artifact>.manifest.json``
after it, holding what the artifact was made from (``key``), its size and sha256, and the info
the record shows. A later prepare with the same key serves the same file with the same info.

Trust is earned: a manifest whose key differs (another model, tolerance or profile), or whose
artifact is missing, truncated or altered (size or sha256), is ignored and the artifact remade.
The manifest is written last and atomically, so a prepare that died half-way leaves none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def reusable(artifact: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The info saved with ``artifact`` when it was made from ``key`` and is intact; else None."""
    try:
        manifest = json.loads(manifest_path(artifact).read_text(encoding="utf-8"))
        if manifest.get("key") != json.loads(json.dumps(key)):
            return None
        if artifact.stat().st_size != manifest["size_bytes"]:
            return None
        if sha256_of(artifact) != manifest["sha256"]:
            return None
        return manifest["info"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(artifact: Path, key: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest of a finished artifact (after it, so a crash leaves none); returns
    ``info`` as the manifest holds it, so the first prepare and a reuse report alike."""
    info = jsonable(info)
    write_record(manifest_path(artifact), {
        "key": key, "size_bytes": artifact.stat().st_size, "sha256": sha256_of(artifact),
        "info": info,
    })
    return info


def forget(artifact: Path) -> None:
    """Drop the manifest before remaking the artifact, so a half-made one is never trusted."""
    manifest_path(artifact).unlink(missing_ok=True)
