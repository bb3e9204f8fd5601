"""One exception hierarchy for the control side, each class with its exit code.

Commands catch :class:`ServebenchError` at the top, print ``error: <message>`` (one line, no
traceback) and exit with ``exit_code``. Messages say what to do next. They never carry secrets.
"""

from __future__ import annotations


class ServebenchError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def format(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(ServebenchError):
    """Bad input from the user: unknown site, bad duration, malformed file."""

    exit_code = 2


class ConfigError(UsageError):
    """Missing or inconsistent configuration: credentials, targets.yml, inventory."""


class OutputError(ConfigError):
    """An output could not be written (unwritable or missing folder, disk full): the message
    names the path. Exit 2: the fix is another --out (or room on the disk), not a bug."""


class StateError(ServebenchError):
    """The state file is missing, unreadable, or belongs to another project."""

    exit_code = 3


class ProvisionError(ServebenchError):
    """The testbed refused or failed a request, or a wait passed its deadline."""

    exit_code = 4


class TeardownError(ServebenchError):
    """Something chi-up made could not be removed: the message lists what is left."""

    exit_code = 5


class Interrupted(ServebenchError):
    exit_code = 130
