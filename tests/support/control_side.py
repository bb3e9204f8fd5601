"""A control side the tests can kill: bench.yml as a plain `ansible-playbook` process of its own
(session and process group), with an environment the test chooses, plus a look at which engine
processes of a run are still alive on this machine (the loopback nodes are this machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from servebench.runner import passed_env

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
# Credentials a user's shell holds after sourcing an openrc: no engine may see them.
SECRETS = {"OS_PASSWORD": "hunter2-pw", "OS_APPLICATION_CREDENTIAL_SECRET": "app-cred-s3cret"}
# What an engine (and the docker client that starts one) may see: the benchmark role's
# allow-list, plus what the shell itself sets.
ENGINE_ENV = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONUNBUFFERED", "DOCKER_HOST", "PWD", "OLDPWD", "SHLVL", "_"})


def playbook_argv(inventory: Sequence[Path], extravars: Mapping[str, Any],
                  tags: Sequence[str] = ()) -> list[str]:
    argv = [str(ANSIBLE_PLAYBOOK), str(REPO / "bench.yml"), "-e", json.dumps(dict(extravars))]
    for path in inventory:
        argv += ["-i", str(path)]
    return argv + (["--tags", ",".join(tags)] if tags else [])


def playbook_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """What `make bench` gives ansible-playbook, plus ``extra`` (e.g. OS_* to prove they stop)."""
    return {**passed_env(os.environ), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **extra}


def start_bench(log: Path, inventory: Sequence[Path], extravars: Mapping[str, Any],
                env: Mapping[str, str] = {}, tags: Sequence[str] = ()) -> subprocess.Popen:
    """bench.yml in the background, its output to ``log``, in a process group of its own (kill it
    whole with os.killpg, as a closed laptop would)."""
    with open(log, "w") as out:
        return subprocess.Popen(playbook_argv(inventory, extravars, tags), cwd=REPO,
                                env=playbook_env(env), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_bench(inventory: Sequence[Path], extravars: Mapping[str, Any], env: Mapping[str, str] = {},
              tags: Sequence[str] = (), timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(playbook_argv(inventory, extravars, tags), cwd=REPO, env=playbook_env(env),
                          capture_output=True, text=True, timeout=timeout)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it, as a machine switched off would: Ansible's
    workers are in sessions of their own, so killing the process group alone leaves them
    running (and retrying their waits) until they notice."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {pid}, True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line holds ``text`` (an engine's --out folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def process_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def wait_until(check: Callable[[], Any], timeout: float, what: str, step: float = 1.0) -> Any:
    """Poll ``check`` until it returns something true, at most ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(step)
