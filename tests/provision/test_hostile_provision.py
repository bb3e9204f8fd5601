"""chi-up under hostile conditions (issue 10, defects 2 and 7): two runs of one name at once,
a name clash, a lease of that name that is not ours, out-of-range times, a wrong password."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from servebench.provision import lease as lease_mod
from servebench.provision import state as state_mod
from tests.provision.cli_fixtures import REPO, Cli, assert_no_secrets, cli  # noqa: F401


def live_leases(fake, name: str) -> list[dict]:
    return [le for le in fake.state.live()["leases"] if le["name"] == name
            and le["status"] not in ("TERMINATED", "DELETED")]


def state_lease_id(cli: Cli, name: str) -> str:
    state = json.loads(cli.state_file(name).read_text())
    return next(r["id"] for r in state["resources"] if r["kind"] == "lease")


def error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    return result.output.strip().splitlines()[-1]


def test_two_concurrent_chi_up_leave_one_lease_which_the_winner_holds(cli: Cli):
    name = "serve_race2"
    cmd = [sys.executable, "-c", "from servebench.provision.cli import chi_up; chi_up()",
           *cli.up_args("tacc", name)]
    procs = [subprocess.Popen(cmd, cwd=cli.workdir, env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    print(f"exit codes of the two chi-up: {codes}")
    cli.outputs.extend(outputs)
    assert codes[0] == 0, outputs
    # The other waited its turn and reused the lease, or was refused by the lock: never a
    # rollback of the winner's lease.
    assert codes[1] in (0, 3), outputs
    if codes[1] == 3:
        assert any(f"another chi-up or chi-down is working on {name}" in o for o in outputs)
    held = live_leases(cli.fake, name)
    assert len(held) == 1 and held[0]["status"] == "ACTIVE", cli.fake.state.live()["leases"]
    assert state_lease_id(cli, name) == held[0]["id"]
    assert cli.down("--name", name).exit_code == 0
    assert not cli.fake.leaked() and not state_mod.lock_path(name, cli.workdir).exists()
    assert_no_secrets(cli.fake, cli)


def test_a_name_clash_never_rolls_back_the_winners_lease(cli: Cli, monkeypatch, tmp_path):
    name = "serve_race"
    first = cli.up("tacc", name)
    assert first.exit_code == 0, first.output
    winner = state_lease_id(cli, name)
    # The loser, elsewhere, looked before the winner's lease showed: Blazar answers 409.
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    real_find = lease_mod.find_lease
    monkeypatch.setattr(lease_mod, "find_lease", lambda _name: None)
    lost = cli.up("tacc", name)
    monkeypatch.setattr(lease_mod, "find_lease", real_find)
    line = error_line(lost)
    assert lost.exit_code == 4, lost.output
    assert f"a lease named {name} already exists" in line and "another --name" in line, line
    assert "another --start" not in line
    assert [le["id"] for le in live_leases(cli.fake, name)] == [winner]
    monkeypatch.chdir(cli.workdir)
    assert cli.down("--name", name).exit_code == 0
    assert not cli.fake.leaked()


def test_chi_up_refuses_while_another_holds_the_name(cli: Cli):
    with state_mod.locked("serve_locked"):
        result = cli.up("tacc", "serve_locked")
        assert result.exit_code == 3, result.output
        assert "another chi-up or chi-down is working on serve_locked" in error_line(result)
        down = cli.down("--name", "serve_locked", "--site", "tacc")
        assert down.exit_code == 3, down.output
    assert live_leases(cli.fake, "serve_locked") == []


def test_a_lease_of_another_user_is_neither_reused_nor_deleted(cli: Cli, monkeypatch, tmp_path):
    name = "serve_theirs"
    assert cli.up("tacc", name).exit_code == 0
    theirs = state_lease_id(cli, name)
    cli.fake.state.leases[theirs].user_id = "0123456789abcdef0123456789abcdef"
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    result = cli.up("tacc", name)
    assert result.exit_code == 4, result.output
    assert "another user of the project made it" in error_line(result)
    assert [le["id"] for le in live_leases(cli.fake, name)] == [theirs]
    monkeypatch.chdir(cli.workdir)
    assert cli.down("--name", name).exit_code == 0


@pytest.mark.parametrize("args, expected", [
    (("--duration", "99999999999d"), "bad --duration '99999999999d'"),
    (("--duration", "99999999999999999999"), "bad --duration"),
    (("--start", "9999-12-31T23:00Z"), "past the year 9999"),
    (("--start", "9999-12-31T23:59"), "--start"),
], ids=["duration-days", "duration-hours", "start-utc", "start-local"])
def test_out_of_range_times_are_usage_errors(cli: Cli, args, expected):
    result = cli.up("tacc", "serve_range", *args, "--dry-run")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert expected in line and "unexpected" not in line, line


def test_a_wrong_password_gets_the_password_hint(cli: Cli):
    fake = cli.fake
    clean = {k: None for k in fake.env if k.startswith("OS_")}
    env = {**clean, **fake.password_env, "OS_PASSWORD": "not-the-password"}
    result = cli.up("tacc", "serve_pw", "--dry-run", env=env)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "credentials rejected" in line and "OS_PASSWORD" in line, line
    assert "application credentials" not in line
