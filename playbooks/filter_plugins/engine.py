"""Filters over the engine's settings table (`python -m servebench_engine.settings`, read once by
playbooks/plan.yml): bench-run's argv from knob values, and the check of those values.

The table is the one place a setting the engine reads is declared: its flag, the Ansible knob that
sets it (or none: the benchmark role fills it), its type, bounds and help. A setting the engine
gains reaches every node's bench-run through these filters with no playbook edited.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

_WHOLE = re.compile(r"^[+-]?[0-9]+$")
_TRUE = {"true", "yes", "on", "1", "y", "t"}
_FALSE = {"false", "no", "off", "0", "n", "f"}


def _unset(value: Any) -> bool:
    """None or empty: the engine's own default (its flag is left out)."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _number(kind: str, value: Any) -> int | float | None:
    """``value`` as the setting's number, or None when it is not one (or not finite)."""
    if isinstance(value, bool):
        return None
    if kind == "int":
        if isinstance(value, int):
            return value
        text = str(value).strip()
        return int(text) if _WHOLE.match(text) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _default(setting: Mapping[str, Any]) -> str:
    default = setting.get("default")
    return "the engine's default" if default in (None, [], "") else f"{default}"


def _problem(setting: Mapping[str, Any], value: Any, limit: int | None) -> str | None:
    """Why ``value`` is no good for ``setting``, or None."""
    kind, low = setting["type"], setting.get("min")
    high = setting.get("max") if setting.get("max") is not None else limit
    if kind == "bool":
        return None if _bool(value) is not None else "must be true or false"
    if kind in ("int", "float"):
        number = _number(kind, value)
        span = (f" from {low}" if low is not None else "") + (f" to {high}" if high is not None else "")
        what = ("a whole number" if kind == "int" else "a finite number") + span
        if number is None:
            return f"must be {what}"
        if (low is not None and number < low) or (high is not None and number > high):
            return f"must be {what}"
        return None
    choices = setting.get("choices")
    if choices is not None and str(value) not in choices:
        return f"must be one of {', '.join(choices)}"
    return None


def engine_knob_errors(settings: Iterable[Mapping[str, Any]], values: Mapping[str, Any],
                       limits: Mapping[str, int] | None = None, where: str = "") -> list[str]:
    """One message per knob in ``values`` whose value the engine would refuse.

    ``limits``: upper bounds the table leaves to the machine (null ``max``), by knob, where the
    plan knows them (the control node's usable CPUs for localhost).
    """
    found = []
    for setting in settings:
        knob = setting.get("knob")
        if not knob or knob not in values or _unset(values[knob]):
            continue
        value = values[knob]
        for one in (value if setting["repeatable"] and isinstance(value, list) else [value]):
            why = _problem(setting, one, (limits or {}).get(knob))
            if why:
                found.append(f"{knob}{' of ' + where if where else ''} {why} (got {one}; "
                             f"bench-run {setting['flag']}; leave it unset for {_default(setting)})")
    return found


def engine_argv(settings: Iterable[Mapping[str, Any]], by_knob: Mapping[str, Any],
                by_name: Mapping[str, Any] | None = None) -> list[str]:
    """bench-run's arguments, in the table's order: each setting with a knob from ``by_knob``
    (the knob values given), each the role fills itself from ``by_name`` (setting name -> value).
    An unset value leaves its flag out; a bool is a bare flag, present when true; a repeatable
    setting takes a list, one flag per item."""
    argv: list[str] = []
    for setting in settings:
        knob = setting.get("knob")
        source, key = (by_knob, knob) if knob else (by_name or {}, setting["name"])
        if key not in source or _unset(source[key]):
            continue
        value = source[key]
        if setting["type"] == "bool":
            if _bool(value):
                argv.append(setting["flag"])
            continue
        for one in (value if setting["repeatable"] and isinstance(value, list) else [value]):
            argv += [setting["flag"], str(one).strip()]
    return argv


class FilterModule:
    def filters(self):
        return {"engine_argv": engine_argv, "engine_knob_errors": engine_knob_errors}
