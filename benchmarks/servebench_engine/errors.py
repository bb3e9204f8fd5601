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
from collections.abc import Sequence
from typing import Any, Callable

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
    """SIGTERM, raised by :func:`sigterm_raises`: handled like Ctrl-C (bench-run: suite.json says
    interrupted, temporary files go; chi-up: its rollback runs), exit 143."""

    exit_code = ExitCode.TERMINATED


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


# (exception types, what to say and the exit status): a side's own failures, tried in order
# before the ones both sides share (Ctrl-C, then any other exception: a bug).
Handler = tuple[type[BaseException] | tuple[type[BaseException], ...],
                Callable[[Any], tuple[str, int]]]


def _os_error(exc: OSError) -> tuple[str, int]:
    error = OutputError.from_os_error(exc)
    return str(error), error.exit_code


ENGINE_HANDLERS: tuple[Handler, ...] = (
    (EngineError, lambda e: (str(e), e.exit_code)),
    (OSError, _os_error),
    (Terminated, lambda e: ("terminated (SIGTERM); the records finished before are kept",
                            ExitCode.TERMINATED)),
)


def exit_status(body: Callable[[], object], *, handlers: Sequence[Handler] = ENGINE_HANDLERS,
                error: Callable[[str], None] = _error, sigterm: bool = True) -> int:
    """Run ``body`` (with SIGTERM unwinding like Ctrl-C, unless ``sigterm`` is False); its exit
    status, and one line through ``error`` for anything that went wrong (a traceback only for a
    bug with SERVEBENCH_DEBUG=1). The one top-level handler of both sides: the control side
    (servebench.command) passes its own ``handlers``."""
    try:
        with sigterm_raises() if sigterm else contextlib.nullcontext():
            code = body()
    except (Exception, KeyboardInterrupt) as exc:
        for kinds, handle in handlers:
            if isinstance(exc, kinds):
                text, status = handle(exc)
                error(text)
                return status
        if isinstance(exc, KeyboardInterrupt):
            error("interrupted")
            return ExitCode.INTERRUPTED
        if os.environ.get(DEBUG_VARIABLE):
            raise
        error(f"unexpected {type(exc).__name__}: {exc} (a bug: rerun with {DEBUG_VARIABLE}=1 "
              "for the traceback and report it)")
        return ExitCode.BUG
    return ExitCode.OK if code is None else int(code)


# The exception of the last SIGINT/SIGTERM, kept: Python swallows one raised while it runs an
# at-fork hook (logging's, at every subprocess start) or a __del__ ("Exception ignored in"),
# which made a SIGTERM landing while a child process starts go unnoticed and the suite run on.
_signalled: list[type[KeyboardInterrupt]] = []
# > 0 while a child process is being started and registered: a signal then only records itself
# (see signals_deferred), else the child would start unseen and outlive the cleanup.
_deferring: list[int] = [0]


def raise_if_signalled() -> None:
    """Raise the interruption a signal asked for, if Python swallowed it on the way."""
    if _signalled:
        raise _signalled[-1]


@contextlib.contextmanager
def signals_deferred():
    """Within, SIGTERM/SIGINT are recorded, not raised; raised on the way out. For a step that
    must not be cut in two: starting a child and registering it, so that the cleanup stops it."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    if not _deferring[0]:
        raise_if_signalled()


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM (``timeout`` in the benchmark role, a stopped job) unwinds like Ctrl-C: the
    suite marks itself interrupted and the temporary folders are removed on the way out (the
    control side's commands use it too: chi-up's rollbacks run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        _signalled.append(Terminated)
        if not _deferring[0]:
            raise Terminated

    def interrupt(signum, frame):
        _signalled.append(KeyboardInterrupt)
        if not _deferring[0]:
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
