"""The playbooks parse, and ansible-lint's production profile passes, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

BIN = Path(sys.executable).parent


def _run(argv: list[str], timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), NO_COLOR="1",
               ANSIBLE_NOCOLOR="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("playbook", ["bench.yml", "playbooks/teardown.yml"])
def test_syntax_check(playbook):
    done = _run([str(BIN / "ansible-playbook"), "--syntax-check", playbook], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_ansible_lint_production_profile_offline():
    # --offline: no Galaxy installs, no schema downloads (this machine has no internet).
    done = _run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor",
                 "bench.yml", "playbooks", "roles"], timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
