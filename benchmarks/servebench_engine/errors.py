"""Errors the engine reports to its user, each with its exit code, and the one exit-code table.

The engine runs on nodes without the control-side package, so it has its own small hierarchy
(the same convention as ``servebench.errors``: one line ``error: <message>``, no traceback).
Failures *inside* a variant are not these: they become error records and the suite goes on.

:data:`EXIT_CODES` is the one table of exit statuses for both sides: each code has one meaning
everywhere. The engine's :class:`ExitCode` and the control side's (``servebench.errors``, which
may import this module; the node side never imports that one) are both made from it, and
``python -m servebench_engine.settings`` prints it for the benchmark role. The engine exits 0
the suite ran, 1 an unexpected error (a bug), 2 bad input (nothing written), 7 a file could not
be read or written (disk full, read-only folder: the message names the path), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM). :func:`exit_status` is the one top-level handler.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import threading
from typing import Callable

DEBUG_VARIABLE = "SERVEBENCH_DEBUG"


# (code, name, meaning): every exit status either side gives, and what it means there.
EXIT_CODES: tuple[tuple[int, str, str], ...] = (
    (0, "OK", "finished: the suite ran (variant errors and skips are in their records), or the "
              "command did what it was asked"),
    (1, "BUG", "an unexpected error, a bug of ours (SERVEBENCH_DEBUG=1 prints the traceback)"),
    (2, "USAGE", "bad input, usage or configuration (or an output of a control-side command that "
                 "could not be written): nothing was written"),
    (3, "STATE", "the control side's state file is missing, unreadable or another project's"),
    (4, "PROVISION", "the testbed refused or failed a request, or a wait passed its deadline"),
    (5, "TEARDOWN", "teardown left something (the message lists what)"),
    (6, "REGRESSION", "bench-report --compare --fail-above found a significant slowdown"),
    (7, "FILE", "bench-run: a file could not be read or written (full disk, no permission; the "
                "message names it); the records finished before stay valid"),
    (124, "TIMEOUT", "the `timeout` command stopped the engine: it ran past its time limit"),
    (130, "INTERRUPTED", "interrupted (Ctrl-C): finished records kept, suite.json says "
                         "interrupted"),
    (143, "TERMINATED", "terminated (SIGTERM): the same as 130"),
)


def exit_code_enum(*names: str) -> type[enum.IntEnum]:
    """An ``ExitCode`` enum of the named rows of :data:`EXIT_CODES` (a side's own subset)."""
    codes = {name: code for code, name, _ in EXIT_CODES}
    return enum.IntEnum("ExitCode", [(name, codes[name]) for name in names])


def exit_code_table() -> list[dict]:
    return [{"code": code, "name": name, "meaning": meaning} for code, name, meaning in EXIT_CODES]


# What bench-run and its worker children exit with.
ExitCode = exit_code_enum("OK", "BUG", "USAGE", "FILE", "INTERRUPTED", "TERMINATED")


class EngineError(Exception):
    exit_code = ExitCode.BUG


class InputError(EngineError):
    """Bad input (model, data, variant ids, paths): nothing was written to --out."""

    exit_code = ExitCode.USAGE


class OutputError(EngineError):
    """An OSError on a file (disk full, read-only folder): the records finished before stay."""

    exit_code = ExitCode.FILE

    @classmethod
    def from_os_error(cls, exc: OSError) -> "OutputError":
        where = exc.filename or "a file"
        reason = exc.strerror or type(exc).__name__
        return cls(f"{where}: {reason} (free space or choose a writable folder; records "
                   "finished before stay valid)")


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled like Ctrl-C (suite.json says interrupted, temporary files go)."""

    exit_code = ExitCode.TERMINATED


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


def exit_status(body: Callable[[], object]) -> int:
    """Run ``body`` with SIGTERM unwinding like Ctrl-C; its exit status, and one line on stderr
    for anything that went wrong (a traceback only for a bug with SERVEBENCH_DEBUG=1)."""
    try:
        with sigterm_raises():
            code = body()
    except EngineError as e:
        _error(str(e))
        return e.exit_code
    except OSError as e:
        error = OutputError.from_os_error(e)
        _error(str(error))
        return error.exit_code
    except Terminated:
        _error("terminated (SIGTERM); the records finished before are kept")
        return ExitCode.TERMINATED
    except KeyboardInterrupt:
        _error("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as e:  # noqa: BLE001 -- a bug of ours: still one line, unless debugging
        if os.environ.get(DEBUG_VARIABLE):
            raise
        _error(f"unexpected {type(e).__name__}: {e} (a bug: rerun with {DEBUG_VARIABLE}=1 for "
               "the traceback and report it)")
        return ExitCode.BUG
    return ExitCode.OK if code is None else int(code)


# The exception of the last SIGINT/SIGTERM, kept: Python swallows one raised while it runs an
# at-fork hook (logging's, at every subprocess start) or a __del__ ("Exception ignored in"),
# which made a SIGTERM landing while a child process starts go unnoticed and the suite run on.
_signalled: list[type[KeyboardInterrupt]] = []


def raise_if_signalled() -> None:
    """Raise the interruption a signal asked for, if Python swallowed it on the way."""
    if _signalled:
        raise _signalled[-1]


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM (``timeout`` in the benchmark role, a stopped job) unwinds like Ctrl-C: the
    suite marks itself interrupted and the temporary folders are removed on the way out.
    (servebench.command.sigterm_raises is its control-side twin: the node side cannot import
    the control side.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        _signalled.append(Terminated)
        raise Terminated

    def interrupt(signum, frame):
        _signalled.append(KeyboardInterrupt)
        raise KeyboardInterrupt

    def unraisable(info):
        # One of ours, swallowed: raise_if_signalled raises it again, the user sees one line.
        if not (_signalled and isinstance(info.exc_value, KeyboardInterrupt)):
            previous_hook(info)

    _signalled.clear()
    previous = signal.signal(signal.SIGTERM, terminate)
    previous_int = signal.signal(signal.SIGINT, interrupt)
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        sys.unraisablehook = previous_hook
