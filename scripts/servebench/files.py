"""How the control side writes files: one that must never be seen half-written or readable by
others (a temporary file in the same folder, mode set before any byte is written, fsync, rename
over the final name, fsync the folder so the rename survives a crash); and files renamed into a
folder of a run that is never a symlink, so nothing is written or deleted through a link."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def open_own_folder(path: Path) -> int:
    """A descriptor of ``path``, made if missing: a folder the command names itself inside a run
    folder (plots/, compare/). It is opened without following a symlink, and every later write
    or delete goes through the descriptor, so nothing is written or removed through a link, not
    even one swapped in after this check. A link there is refused (OutputError, exit 2)."""
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:  # a symlink to nowhere, or a file: named below
        pass
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if path.is_symlink():
            target = os.readlink(path)
            raise OutputError(f"{path} is a symlink (to {ascii(target)[:200]}): refused, nothing "
                              "is written or deleted through a link",
                              hint="remove the link, or pass --out another folder") from None
        if exc.errno == errno.ENOTDIR:
            raise OutputError(f"{path} is not a folder",
                              hint="move it away, or pass --out another folder") from None
        raise


def move_into(staging: Path, folder: int, names: Iterable[str]) -> None:
    """Rename each of ``names`` from ``staging`` over the file of that name in ``folder`` (a
    descriptor from open_own_folder), atomic per file; a name missing from ``staging`` is removed
    there (renaming over, or removing, a link there touches the link, never its target)."""
    for name in names:
        if (staging / name).exists():
            os.replace(staging / name, name, dst_dir_fd=folder)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
