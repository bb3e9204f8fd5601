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


# -- issue 17, item 10: chi-down deletes only the files chi-up wrote for that deployment --------

def _victims(cli: Cli, tmp_path, case: str) -> dict[str, str]:
    """Files a tampered state file could name instead of the deployment's own, by case."""
    folder = tmp_path / "victims"
    folder.mkdir()
    if case == "passwd_like":
        inventory = folder / "passwd"
        inventory.write_text("root:x:0:0:root:/root:/bin/bash\n")
        known_hosts = folder / "shadow"
        known_hosts.write_text("root:*:19000:0:99999:7:::\n")
    else:  # another deployment's files, as chi-up writes them
        from servebench.provision import inventory as inventory_mod

        host = inventory_mod.Host("node-serve-other", "127.0.0.9", 22, "cc", folder / "key",
                                  "CHI@UC", "2026-12-04T20:00", "server", has_gpu=True)
        known_hosts = folder / "known_hosts-serve_other"
        known_hosts.write_text("127.0.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExample\n")
        inventory = inventory_mod.write(folder / "chi_serve_other.yml", "serve_other", [host],
                                        known_hosts)
    return {"inventory": str(inventory), "known_hosts": str(known_hosts)}


@pytest.mark.parametrize("case", ["passwd_like", "other_deployment"])
def test_chi_down_keeps_files_its_state_names_but_chi_up_did_not_write(cli: Cli, tmp_path, case):
    name = f"serve_files_{case}"
    assert cli.up("tacc", name).exit_code == 0
    own_known_hosts = cli.workdir / ".servebench" / f"known_hosts-{name}"
    victims = _victims(cli, tmp_path, case)
    before = {path: open(path, "rb").read() for path in victims.values()}
    state_path = cli.state_file(name)
    state = json.loads(state_path.read_text())
    state.update(victims)
    state_path.write_text(json.dumps(state))

    down = cli.down("--name", name)
    assert down.exit_code == 0, down.output
    for path, content in before.items():
        assert open(path, "rb").read() == content, f"{path} was changed or deleted"
        assert f"kept {path}" in down.output, down.output
    assert "so not a file chi-up wrote for" in down.output
    assert not state_path.exists() and not own_known_hosts.exists()
    assert not cli.fake.leaked()


# -- issue 17, item 11: provisioning input errors stay user errors -----------------------------

def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and not isinstance(
        result.exception, (TypeError, KeyError, UnicodeDecodeError, AttributeError)), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_binary_openrc_is_a_usage_error(cli: Cli, tmp_path):
    openrc = tmp_path / "openrc.bin"
    openrc.write_bytes(bytes(range(256)) * 8)
    line = one_line_error(cli.up("tacc", "serve_openrc", "--dry-run", "--openrc", str(openrc)), 2)
    assert "is not a text file" in line and str(openrc) in line, line
    assert not cli.fake.requests_to("POST", r"/leases$")


MALFORMED = [(command, case) for command in ("chi-down", "chi-status")
             for case in ("identity_string", "identity_empty", "no_name")]


@pytest.mark.parametrize("command, case", MALFORMED, ids=[
    "chi-down-identity_string", "chi-down-identity_empty", "chi-down-no_name",
    "chi-status-identity_string", "chi-status-identity_empty", "chi-status-no_name"])
def test_a_malformed_state_file_is_exit_3_in_one_line(tmp_path, monkeypatch, case, command):
    from click.testing import CliRunner

    from servebench.provision.cli import chi_down, chi_status

    monkeypatch.chdir(tmp_path)
    state = {"version": 1, "name": "serve_bad", "resources": [],
             "identity": {"site": "tacc", "region": "CHI@TACC", "auth_url": "http://127.0.0.1:9/v3",
                          "project_id": "p"}}
    if case == "identity_string":
        state["identity"] = "x"
    elif case == "identity_empty":
        state["identity"] = {}
    else:
        del state["name"]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    result = CliRunner().invoke({"chi-down": chi_down, "chi-status": chi_status}[command],
                                ["--state", str(path)])
    line = one_line_error(result, 3)
    assert f"state file {path} is malformed" in line, line
    assert path.exists()


NOT_FINITE = [(option, value, words) for option in ("--wait-timeout", "--http-timeout")
              for value, words in (("nan", "'nan' is not a finite number of seconds"),
                                   ("-nan", "'-nan' is not a finite number of seconds"),
                                   ("inf", "not in the range"))]


@pytest.mark.parametrize("option, value, words", NOT_FINITE, ids=[
    "wait-nan", "wait-minus_nan", "wait-inf", "http-nan", "http-minus_nan", "http-inf"])
def test_a_time_out_that_is_not_a_finite_number_is_refused(tmp_path, monkeypatch, option, value,
                                                           words):
    from click.testing import CliRunner

    from servebench.provision.cli import chi_up

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(chi_up, ["--site", "tacc", "--dry-run", option, value])
    line = one_line_error(result, 2)
    assert words in line and option in line, line


def test_a_checkout_path_with_a_space_gives_an_inventory_ssh_and_ansible_can_use(
        fake_chameleon, tmp_path, monkeypatch):
    """The inventory's UserKnownHostsFile is quoted for Ansible (which shlex-splits the SSH
    arguments) and for ssh (which splits the file list at spaces): a real Ansible ping over real
    SSH through it pins the host key in the file under the path with spaces."""
    workdir = tmp_path / "my checkout" / "with spaces"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("SERVEBENCH_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("OS_KEYPAIR_PRIVATE_KEY", raising=False)
    cli = Cli(fake_chameleon, workdir)
    name = "serve_spaces"
    assert cli.up("tacc", name).exit_code == 0, cli.outputs[-1]
    known_hosts = workdir / ".servebench" / f"known_hosts-{name}"
    known_hosts.unlink(missing_ok=True)
    ping = cli.ping(cli.inventory(name))
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout, ping.stdout
    assert known_hosts.is_file() and "ssh-" in known_hosts.read_text()
    assert cli.down("--name", name).exit_code == 0
    assert not known_hosts.exists() and not cli.fake.leaked()
