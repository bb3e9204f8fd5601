"""Helpers for the chi-up / chi-down / chi-status tests: run the real Click entry points in-process
against the fake Chameleon, from a scratch working directory, and look at what they left.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from servebench.provision.cli import chi_down, chi_status, chi_up

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = Path(sys.executable).with_name("ansible")
SITE_NAMES = {"tacc": "CHI@TACC", "uc": "CHI@UC", "edge": "CHI@Edge"}


@dataclass
class Cli:
    """Runs chi-up/down/status in ``workdir`` with python-chi pointed at ``fake``; keeps every
    output for the secret grep."""

    fake: object
    workdir: Path
    outputs: list[str] = field(default_factory=list)

    def run(self, command, args: list[str], env: dict | None = None) -> Result:
        result = CliRunner().invoke(command, args, env=env, catch_exceptions=True)
        self.outputs.append(result.output)
        return result

    def up_args(self, site: str, name: str, *extra: str) -> list[str]:
        return ["--site", site, "--name", name, "--key", str(self.fake.ssh_key),
                "--ssh-user", self.fake.ssh_user, "--wait-timeout", "20",
                "--http-timeout", "3", *extra]

    def up(self, site: str, name: str, *extra: str, env: dict | None = None) -> Result:
        return self.run(chi_up, self.up_args(site, name, *extra), env=env)

    def down(self, *args: str, env: dict | None = None) -> Result:
        return self.run(chi_down, ["--wait-timeout", "20", "--http-timeout", "3", *args], env=env)

    def status(self, *args: str) -> Result:
        return self.run(chi_status, list(args))

    def state_file(self, name: str) -> Path:
        return self.workdir / ".servebench" / f"state-{name}.json"

    def inventory(self, name: str) -> Path:
        return self.workdir / "inventory" / f"chi_{name}.yml"

    def written_files(self) -> list[Path]:
        return [p for p in self.workdir.rglob("*") if p.is_file()]

    def ping(self, inventory: Path) -> subprocess.CompletedProcess:
        """``ansible all -m ansible.builtin.ping`` over real SSH through the inventory."""
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
               "ANSIBLE_INVENTORY": str(inventory), "ANSIBLE_LOCAL_TEMP": str(self.workdir / ".ansible-tmp"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0",
               # The "node" is this machine, whose PATH may hold pyenv shims that discovery
               # would pick; its system python is what a node's image provides.
               "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}
        return subprocess.run([str(ANSIBLE), "all", "-i", str(inventory), "-m", "ansible.builtin.ping"],
                              cwd=self.workdir, env=env, capture_output=True, text=True,
                              timeout=120)


@pytest.fixture
def cli(fake_chameleon, tmp_path, monkeypatch) -> Cli:
    """chi-* against ``fake_chameleon`` from a scratch directory, polling every 50 ms."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("SERVEBENCH_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("OS_KEYPAIR_PRIVATE_KEY", raising=False)
    return Cli(fake_chameleon, workdir)


def assert_no_secrets(fake, cli: Cli, extra_text: str = "") -> None:
    """No secret the fake accepted or issued appears in any output or file we wrote."""
    texts = {"outputs": "\n".join(cli.outputs) + extra_text}
    for path in cli.written_files():
        texts[str(path)] = path.read_text(errors="replace")
    for secret in fake.secrets:
        for where, text in texts.items():
            assert secret not in text, f"a secret leaked into {where}"
