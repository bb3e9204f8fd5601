"""Errors the engine reports to its user, each with its exit code.

The engine runs on nodes without the control-side package, so it has its own small hierarchy
(the same convention as ``servebench.errors``: one line ``error: <message>``, no traceback).
Failures *inside* a variant are not these: they become error records and the suite goes on.
"""

from __future__ import annotations


class EngineError(Exception):
    exit_code = 1


class InputError(EngineError):
    """Bad input (model, data, variant ids, paths): nothing was written to --out."""

    exit_code = 2
