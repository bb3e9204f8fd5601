"""Filters for playbooks/plan.yml's check of the settings a run is given."""

from __future__ import annotations

import difflib
import os


def extra_var_names(_unused=None) -> list[str]:
    """The names given with -e (NAME=VALUE, YAML/JSON, @file), as ansible-playbook read them.

    Ansible keeps no variable of its own for them: a run knob misspelled on the command line
    would otherwise be one more unused variable. The plan runs on the controller, whose process
    parsed them (ansible.utils.vars caches the result).
    """
    from ansible.utils.vars import load_extra_vars

    given = getattr(load_extra_vars, "extra_vars", None)
    if given is None:
        from ansible.parsing.dataloader import DataLoader

        given = load_extra_vars(DataLoader())
    return sorted(str(name) for name in given)


def abspath(path: str) -> str:
    """``path`` made absolute against the folder ansible-playbook was started in (modules run
    elsewhere, so a relative path given with -e would be read from there)."""
    return os.path.abspath(os.path.expanduser(str(path)))


def closest_setting(name: str, known: list[str]) -> str:
    """The declared setting ``name`` is most likely a misspelling of, or '' when none is close."""
    found = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.75)
    return found[0] if found else ""


class FilterModule:
    def filters(self):
        return {"closest_setting": closest_setting, "extra_var_names": extra_var_names,
                "abspath": abspath}
