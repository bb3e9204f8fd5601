"""Errors the engine reports to its user, each with its exit code.

The engine runs on nodes without the control-side package, so it has its own small hierarchy
(the same convention as ``servebench.errors``: one line ``error: <message>``, no traceback).
Failures *inside* a variant are not these: they become error records and the suite goes on.

Exit codes: 0 the suite ran, 2 bad input (nothing written), 3 a file could not be read or
written (disk full, read-only folder: the message names the path), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM, what ``timeout`` sends).
"""

from __future__ import annotations


class EngineError(Exception):
    exit_code = 1


class InputError(EngineError):
    """Bad input (model, data, variant ids, paths): nothing was written to --out."""

    exit_code = 2


class OutputError(EngineError):
    """An OSError on a file (disk full, read-only folder): the records finished before stay."""

    exit_code = 3

    @classmethod
    def from_os_error(cls, exc: OSError) -> "OutputError":
        where = exc.filename or "a file"
        reason = exc.strerror or type(exc).__name__
        return cls(f"{where}: {reason} (free space or choose a writable folder; records "
                   "finished before stay valid)")


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled like Ctrl-C (suite.json says interrupted, temporary files go)."""

    exit_code = 143
