"""Filters for playbooks/plan.yml's check of the settings a run is given."""

from __future__ import annotations

import difflib


def closest_setting(name: str, known: list[str]) -> str:
    """The declared setting ``name`` is most likely a misspelling of, or '' when none is close."""
    found = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.75)
    return found[0] if found else ""


class FilterModule:
    def filters(self):
        return {"closest_setting": closest_setting}
