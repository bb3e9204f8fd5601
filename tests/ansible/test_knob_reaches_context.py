"""A setting the engine gains in one place (a field of servebench_engine.settings.Settings, with its
knob) is a knob of bench.yml: the plan declares and checks it from the engine's table, the
benchmark role passes its flag, and the value reaches Context in the worker child that measures a
variant. Run on a copy of the repository whose settings.py has one throwaway field more; nothing
else in the copy is edited but a probe in context.py that reports what a child's Context holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
COPIED = ("bench.yml", "ansible.cfg", "targets.yml", "playbooks", "roles", "inventory", "benchmarks")
FIELD = '''
    probe_note: str | None = setting(
        None, "str", knob="benchmark_probe_note", metavar="PATH",
        help="a throwaway setting of tests/ansible/test_knob_reaches_context.py")
'''
# Observation only: each Context a process builds writes where it was built, and what it holds.
PROBE = '''

def _probed(init):
    def probed(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.probe_note:
            import json, sys
            Path(self.probe_note).write_text(json.dumps({"argv": sys.argv, "value": self.probe_note}))
    return probed


Context.__init__ = _probed(Context.__init__)
'''


def _copy_with_a_new_setting(root: Path) -> Path:
    copy = root / "repo"
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    settings = copy / "benchmarks" / "servebench_engine" / "settings.py"
    text = settings.read_text()
    anchor = "\n    def __post_init__(self) -> None:"
    assert text.count(anchor) == 1, "Settings lost its __post_init__: update this test's anchor"
    settings.write_text(text.replace(anchor, FIELD + anchor))
    context = copy / "benchmarks" / "servebench_engine" / "context.py"
    context.write_text(context.read_text() + PROBE)
    return copy


def _bench(repo: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(repo / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible-tmp")}
    return subprocess.run([str(PLAYBOOK), str(repo / "bench.yml"), "-i", str(repo / "inventory" / "local.yml"),
                           "-e", "profile=smoke", "-e", "variants=onnx-cpu",
                           "-e", f"results_dir={cwd / 'results'}", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_a_setting_added_to_the_engine_reaches_context_in_a_worker_child(tmp_path):
    note = tmp_path / "probe.json"

    # Today's tree does not know the knob: refused at the plan's start.
    refused = _bench(REPO, tmp_path, "--tags", "plan-only", "-e", f"benchmark_probe_note={note}")
    assert refused.returncode != 0 and "unknown setting benchmark_probe_note" in refused.stdout, \
        refused.stdout[-2000:]

    repo = _copy_with_a_new_setting(tmp_path)
    done = _bench(repo, tmp_path, "-e", f"benchmark_probe_note={note}")

    assert done.returncode == 0, done.stdout[-4000:]
    seen = json.loads(note.read_text())
    assert seen["value"] == str(note)
    # Written by the child that measured the variant, not by bench-run itself.
    assert seen["argv"][0].endswith(os.path.join("servebench_engine", "worker.py")), seen["argv"]
