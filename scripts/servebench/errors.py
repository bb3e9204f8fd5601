"""One exception hierarchy for the control side, each class with its exit code.

Every console script exits through one handler (servebench.command.exit_status): it prints
``error: <message>`` (one line, no traceback) and exits with the error's ``exit_code``, one of
:class:`ExitCode`. Messages say what to do next. They never carry secrets.
"""

from __future__ import annotations

# Terminated (SIGTERM unwinding like Ctrl-C) is the engine's: its sigterm_raises raises it.
from servebench_engine.errors import Terminated, exit_code_enum  # noqa: F401

# The control side's rows of the one exit-code table (servebench_engine.errors.EXIT_CODES, each
# code one meaning on both sides): chi-up, chi-down, chi-status, chi-extend, bench-report and
# servebench.collect exit with these (README, "Exit codes").
ExitCode = exit_code_enum("OK", "BUG", "USAGE", "STATE", "PROVISION", "TEARDOWN", "REGRESSION",
                          "INTERRUPTED", "TERMINATED")


class ServebenchError(Exception):
    exit_code = ExitCode.BUG

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def format(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(ServebenchError):
    """Bad input from the user: unknown site, bad duration, malformed file."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """Missing or inconsistent configuration: credentials, targets.yml, inventory."""


class OutputError(ConfigError):
    """An output could not be written (unwritable or missing folder, disk full): the message
    names the path. Exit 2: the fix is another --out (or room on the disk), not a bug."""


class RegressionError(ServebenchError):
    """bench-report --compare found a significant slowdown above --fail-above (a CI gate)."""

    exit_code = ExitCode.REGRESSION


class StateError(ServebenchError):
    """The state file is missing, unreadable, or belongs to another project."""

    exit_code = ExitCode.STATE


class ProvisionError(ServebenchError):
    """The testbed refused or failed a request, or a wait passed its deadline."""

    exit_code = ExitCode.PROVISION


class TeardownError(ServebenchError):
    """Something chi-up made could not be removed: the message lists what is left."""

    exit_code = ExitCode.TEARDOWN


class Interrupted(ServebenchError):
    """Ctrl-C, after what it interrupted was rolled back (the message says what is left)."""

    exit_code = ExitCode.INTERRUPTED


class TerminatedError(Interrupted):
    """SIGTERM, rolled back like Ctrl-C."""

    exit_code = ExitCode.TERMINATED
