"""The one top-level error handler of the control side's console scripts.

chi-up, chi-down, chi-status, bench-report and servebench.collect are :class:`OneLineCommand`s: every
way out is one line ``error: ...`` on stderr and an :class:`~servebench.errors.ExitCode`, never a
traceback (unless SERVEBENCH_DEBUG=1, for a bug).
"""

from __future__ import annotations

import sys
from typing import Callable

import click

# One handler and one SIGTERM guard for both sides: the engine's (the node side cannot import
# this package; this side may import the engine's errors, which need only the standard library).
from servebench_engine.errors import Handler, sigterm_raises
from servebench_engine.errors import exit_status as _exit_status

from .errors import ExitCode, ServebenchError, Terminated

__all__ = ["OneLineCommand", "exit_status", "sigterm_raises"]

HANDLERS: tuple[Handler, ...] = (
    # Click's usage errors (a missing option, a bad value): one line, no usage block.
    (click.ClickException, lambda e: (f"{e.format_message()} (see --help)", ExitCode.USAGE)),
    (ServebenchError, lambda e: (e.format(), e.exit_code)),
    (Terminated, lambda e: ("terminated", ExitCode.TERMINATED)),
    # Click turns a Ctrl-C during a prompt into Abort.
    (click.Abort, lambda e: ("interrupted", ExitCode.INTERRUPTED)),
)


def exit_status(body: Callable[[], object], error: Callable[[str], None]) -> int:
    """Run ``body``; return its exit status, printing through ``error`` what went wrong. SIGTERM
    is left to the commands that handle it (:func:`sigterm_raises` around their work)."""
    return _exit_status(body, handlers=HANDLERS, error=error, sigterm=False)


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
