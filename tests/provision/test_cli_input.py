"""Bad input and wrong circumstances: each is one line ``error: ...``, no traceback, and the exit
code of its class (2 usage/config, 3 state, 4 provisioning). Also: credentials from an openrc,
a lease that starts later, and secrets that never show."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from servebench.provision.cli import chi_down, chi_status, chi_up
from tests.provision.cli_fixtures import Cli, assert_no_secrets, cli  # noqa: F401
from tests.support.sshd import make_keypair


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No credentials, no testbed: a scratch directory and a key pair."""
    for key in [k for k in __import__("os").environ if k.startswith(("OS_", "CHI_"))]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return make_keypair(tmp_path / "id_test")


def up(*args: str, env: dict | None = None):
    return CliRunner().invoke(chi_up, list(args), env=env)


APP_ENV = {"OS_APPLICATION_CREDENTIAL_ID": "abc", "OS_APPLICATION_CREDENTIAL_SECRET": "s3cret-not-shown"}


@pytest.mark.parametrize("args,code,words", [
    (["--site", "mars"], 2, "unknown site 'mars': choose one of tacc, uc, edge"),
    (["--site", "tacc", "--duration", "3x"], 2, "bad --duration '3x'"),
    (["--site", "tacc", "--duration", "9d"], 2, "bad --duration '9d'"),
    (["--site", "tacc", "--start", "tomorrow"], 2, "bad --start 'tomorrow'"),
    (["--site", "tacc", "--start", "2020-01-01T10:00Z"], 2, "is in the past"),
    (["--site", "edge", "--node-type", "compute_liqid"], 2, "--node-type and --node are for server sites"),
    (["--site", "uc", "--device", "rpi5-01"], 2, "--device is for the edge site"),
    (["--site", "uc", "--name", "has space"], 2, "bad --name 'has space'"),
    (["--site", "uc", "--ssh-port", "abc"], 2, "'abc' is not a valid integer range"),
    (["--sight", "uc"], 2, "No such option '--sight'. Did you mean '--site'?"),
    ([], 2, "Missing option '--site'"),
])
def test_bad_arguments(offline, args, code, words):
    assert words in one_line_error(up(*args, "--key", str(offline), env=APP_ENV), code)


def test_missing_credentials_name_what_is_missing(offline):
    line = one_line_error(up("--site", "tacc", "--key", str(offline)), 2)
    assert "no Chameleon credentials: set OS_APPLICATION_CREDENTIAL_ID and " \
           "OS_APPLICATION_CREDENTIAL_SECRET, or OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME" in line
    line = one_line_error(up("--site", "tacc", "--key", str(offline),
                             env={"OS_AUTH_TYPE": "v3password", "OS_USERNAME": "jane"}), 2)
    assert "credentials incomplete for v3password: missing OS_PASSWORD, OS_PROJECT_NAME or OS_PROJECT_ID" in line


def test_unreadable_or_malformed_keys(offline, tmp_path):
    line = one_line_error(up("--site", "tacc", "--key", str(tmp_path / "nope"), env=APP_ENV), 2)
    assert "cannot read SSH key" in line and "nope" in line
    garbled = tmp_path / "garbled"
    garbled.write_text("x")
    (tmp_path / "garbled.pub").write_text("this is not a key\n")
    assert "is not an OpenSSH public key" in one_line_error(
        up("--site", "tacc", "--key", str(garbled), env=APP_ENV), 2)


def test_down_and_status_with_nothing_deployed(offline):
    assert "no deployment found" in one_line_error(CliRunner().invoke(chi_down, []), 3)
    assert "no deployment found" in one_line_error(CliRunner().invoke(chi_status, []), 3)
    assert "pass --site" in one_line_error(CliRunner().invoke(chi_down, ["--name", "gone"]), 2)


def test_wrong_secret_is_rejected_and_never_printed(cli: Cli):
    fake = cli.fake
    result = cli.up("tacc", "serve_badcred",
                    env={"OS_APPLICATION_CREDENTIAL_SECRET": "wrong-secret-value"})
    line = one_line_error(result, 2)
    assert "credentials rejected" in line and "wrong-secret-value" not in result.output
    assert not fake.leaked()


def test_state_file_of_another_project_is_refused_and_nothing_is_touched(cli: Cli):
    fake = cli.fake
    assert cli.up("tacc", "serve_mine").exit_code == 0
    path = cli.state_file("serve_mine")
    original = path.read_text()
    forged = json.loads(original)
    forged["identity"].update(project_id="0" * 32, project_name="CHI-999999")
    path.write_text(json.dumps(forged))
    before = fake.live_resources()
    for result in (cli.down("--name", "serve_mine"), cli.up("tacc", "serve_mine"),
                   cli.status("--name", "serve_mine")):
        line = result.output.strip().splitlines()[-1]
        assert result.exit_code == 3 and "Traceback" not in result.output, result.output
        assert line.startswith("error: state file") and "belongs to project CHI-999999" in line
    assert fake.live_resources() == before
    path.write_text(original)
    assert cli.down("--name", "serve_mine").exit_code == 0
    assert not fake.leaked()


def test_password_openrc_with_a_prompted_password(cli: Cli, tmp_path):
    """Chameleon's openrc asks for the password into OS_PASSWORD_INPUT; --openrc reads the rest."""
    fake = cli.fake
    env = fake.password_env
    password = env.pop("OS_PASSWORD")
    openrc = tmp_path / "CHI-openrc.sh"
    openrc.write_text("".join(f'export {k}="{v}"\n' for k, v in env.items() if k.startswith("OS_"))
                      + 'read -sr OS_PASSWORD_INPUT\nexport OS_PASSWORD=$OS_PASSWORD_INPUT\n')
    clean = {k: None for k in fake.env if k.startswith("OS_")}
    result = cli.up("uc", "serve_openrc", "--openrc", str(openrc), "--dry-run",
                    env={**clean, "OS_PASSWORD_INPUT": password})
    assert result.exit_code == 0, result.output
    assert "CHI@UC" in result.output and "compute_gigaio" in result.output
    assert_no_secrets(fake, cli)


def test_a_lease_starting_later_is_made_now_and_used_when_it_starts(cli: Cli):
    fake = cli.fake
    start = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%MZ")
    first = cli.up("tacc", "serve_later", "--start", start)
    assert first.exit_code == 0, first.output
    assert "run `chi-up --site tacc --name serve_later` again after then" in first.output
    assert [le["status"] for le in fake.live_resources()["leases"]] == ["PENDING"]
    assert not fake.live_resources()["servers"] and not cli.inventory("serve_later").exists()
    fake.advance(2 * 3600 + 60)
    second = cli.up("tacc", "serve_later", "--start", start)
    assert second.exit_code == 0, second.output
    assert "reusing lease serve_later" in second.output and "ready:" in second.output
    assert len(fake.live_resources()["leases"]) == 1
    assert cli.down().exit_code == 0 and not fake.leaked()


def test_a_state_file_of_another_deployment_is_refused(cli: Cli):
    assert cli.up("tacc", "serve_one", "--dry-run").exit_code == 0
    assert cli.up("tacc", "serve_one").exit_code == 0
    result = cli.up("tacc", "serve_two", "--state", str(cli.state_file("serve_one")))
    assert result.exit_code == 3 and "is the state of serve_one, not serve_two" in result.output
    assert len(cli.fake.live_resources()["leases"]) == 1
    assert cli.down().exit_code == 0 and not cli.fake.leaked()
