"""``python -m servebench.prepared PREPARED_DIR < made.json``: write PREPARED_DIR/artifacts.json.

The prepare play (playbooks/prepare.yml) makes, once on the control node, the files every
testbed node gets: the ONNX export and its torch.export program, the float .tflite, its
calibration images and its full-integer INT8 .tflite. This lists each of them with its size, its
sha256 (what a node's record can be checked against) and how it was made: the route and the
versions of the tools. It knows nothing of any one kind beyond its file name's suffix (KINDS), so a
new prepared file (an OpenVINO IR, say) needs a row there and, if a helper makes it, that
helper's JSON line on stdin.

stdin: a JSON object, file name -> what the play knows of how it was made. For the files a helper
script made (convert_tflite.py, quantize_tflite.py) that is the helper's JSON result line
(``route``, ``versions``, the rest: details); for the engine's own (``--export-only``,
``--export-calibration``) any details the play adds (the profile, the data). A file with no entry
gets its kind's route, and for the engine's own the versions this Python has (the play runs the
engine and this with the same Python); a helper's file with no entry was made by an earlier
attempt of the stage, and says so.

artifacts.json::

    {"schema_version": 1, "files": [{"file", "model", "kind", "size_bytes", "sha256",
                                     "made": {"route", "tool_versions", "details"}}]}
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click

from .command import OneLineCommand
from .errors import UsageError
from .files import write_private

ARTIFACTS_FILE = "artifacts.json"
SCHEMA_VERSION = 1
ENGINE = "servebench_engine"
# (file name suffix, kind, route when the play gives none, the engine's packages that made it or
# None: a helper made it, its own JSON line says how). Longest suffixes first.
KINDS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    (".int8.tflite", "tflite-int8",
     "float .tflite -> ai-edge-quantizer (helpers/quantize_tflite.py, in .venv-litert)", None),
    (".calibration.npy", "calibration images",
     f"{ENGINE} --export-calibration: the validation split's first images, as the INT8 "
     "variants calibrate on them", ("numpy", "pillow")),
    (".tflite", "tflite",
     "onnx -> onnx2torch -> litert-torch (helpers/convert_tflite.py, in .venv-litert)", None),
    (".pt2", "torch.export program", f"{ENGINE} --export-only: torch.export of the network",
     ("torch",)),
    (".onnx", "onnx", f"{ENGINE} --export-only: torch.onnx (TorchScript exporter), opset 17, "
     "dynamic batch", ("torch", "onnx")),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _kind(name: str) -> tuple[str, str, str, tuple[str, ...] | None]:
    for row in KINDS:
        if name.endswith(row[0]):
            return row
    return ("", "other", "not made by the prepare stage's known steps", None)


def describe(folder: Path, made: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """artifacts.json's content for the files in ``folder`` (and ``made``: how some were made)."""
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.name == ARTIFACTS_FILE or path.name.startswith(".") or path.name.endswith(".part"):
            continue
        suffix, kind, route, packages = _kind(path.name)
        given = dict(made.get(path.name) or {})
        if given.get("route") is None and packages is None and suffix:
            route = "made by an earlier attempt of the prepare stage: not known here"
        versions = given.pop("versions", None)
        if versions is None and packages is not None:
            versions = {"python": sys.version.split()[0], **_versions(packages)}
        entry = {
            "file": path.name,
            "model": path.name[: -len(suffix)] if suffix else path.stem,
            "kind": kind,
            "size_bytes": path.stat().st_size,
            "sha256": _sha256(path),
            "made": {"route": given.pop("route", None) or route, "tool_versions": versions,
                     "details": given},
        }
        files.append(entry)
    return {"schema_version": SCHEMA_VERSION, "files": files}


def write(folder: Path, made: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write artifacts.json (whole or not at all); returns what it holds."""
    content = describe(folder, made)
    write_private(folder / ARTIFACTS_FILE, json.dumps(content, indent=1) + "\n", mode=0o644)
    return content


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
def main(folder: Path) -> None:
    """Write FOLDER/artifacts.json: each prepared file's size, sha256 and how it was made, with
    what the prepare play knows (a JSON object, file name -> details) read from stdin."""
    text = sys.stdin.read()
    try:
        made = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(f"stdin is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(made, dict) or not all(isinstance(v, dict) for v in made.values()):
        raise UsageError("stdin must be a JSON object of file name -> object")
    content = write(folder, made)
    click.echo(f"{folder / ARTIFACTS_FILE}: " + ", ".join(f["file"] for f in content["files"]))


if __name__ == "__main__":
    main()
