"""The one top-level error handler of the control side's console scripts.

chi-up, chi-down, chi-status, bench-report and servebench.collect are :class:`OneLineCommand`s: every
way out is one line ``error: ...`` on stderr and an :class:`~servebench.errors.ExitCode`, never a
traceback (unless SERVEBENCH_DEBUG=1, for a bug).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable

import click

from .errors import ExitCode, ServebenchError, Terminated

DEBUG_VARIABLE = "SERVEBENCH_DEBUG"


def exit_status(body: Callable[[], object], error: Callable[[str], None]) -> int:
    """Run ``body``; return its exit status, printing through ``error`` what went wrong."""
    try:
        code = body()
    except click.ClickException as exc:
        # Click's usage errors (a missing option, a bad value): one line, no usage block.
        error(f"{exc.format_message()} (see --help)")
        return ExitCode.USAGE
    except ServebenchError as exc:
        error(exc.format())
        return exc.exit_code
    except Terminated:
        error("terminated")
        return ExitCode.TERMINATED
    except (KeyboardInterrupt, click.Abort):
        # Click turns a Ctrl-C during a prompt into Abort.
        error("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 -- a bug of ours: still one line, unless debugging
        if os.environ.get(DEBUG_VARIABLE):
            raise
        error(f"unexpected {type(exc).__name__}: {exc} (a bug: rerun with {DEBUG_VARIABLE}=1 "
              "for the traceback and report it)")
        return ExitCode.BUG
    return ExitCode.OK if code is None else int(code)


class OneLineCommand(click.Command):
    """A click command whose every failure, Click's own included, goes through exit_status."""

    def error_line(self, ctx: click.Context | None, text: str) -> None:
        """Print the error line; a subclass may scrub it (chi-*: secrets)."""
        click.echo(f"error: {text}", err=True)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        code = exit_status(lambda: super(OneLineCommand, self).main(
            *args, standalone_mode=False, **kwargs), lambda text: self.error_line(None, text))
        sys.exit(code)

    def invoke(self, ctx: click.Context):
        # Handled here, where the context (and what the body left in ctx.obj) is still known.
        return exit_status(lambda: super(OneLineCommand, self).invoke(ctx),
                           lambda text: self.error_line(ctx, text))


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM (a closed terminal, a killed CI job) unwinds like Ctrl-C: rollbacks and cleanups
    run, and the command exits 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
