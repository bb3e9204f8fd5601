"""chi-up -> ansible ping over real SSH through the generated inventory -> chi-down, end to end,
with the real python-chi against the fake Chameleon; then the fake holds nothing of ours."""

from __future__ import annotations

import json
import re
import stat

import pytest
import yaml

from tests.provision.cli_fixtures import SITE_NAMES, Cli, assert_no_secrets, cli  # noqa: F401

CREATES = (r"/leases$", r"/servers$", r"/containers$", r"/floatingips$", r"/os-keypairs$")


def creates(fake) -> list:
    return [r for r in fake.requests if r.method == "POST" and any(
        re.search(p, r.path) for p in CREATES)]


@pytest.mark.parametrize("site", ["tacc", "uc", "edge"])
def test_up_ping_status_rerun_down_leaves_nothing(cli: Cli, site):
    fake = cli.fake
    name = f"serve_{site}_e2e"

    up = cli.up(site, name)
    assert up.exit_code == 0, up.output
    assert "ready:" in up.output

    # The state file: 0600, names every resource with its id, and the project it belongs to.
    state_path = cli.state_file(name)
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    state = json.loads(state_path.read_text())
    kinds = sorted(r["kind"] for r in state["resources"])
    instance = "container" if site == "edge" else "server"
    assert kinds == sorted(["lease", instance, "floating_ip"])
    assert all(r["id"] for r in state["resources"])
    assert state["identity"]["region"] == SITE_NAMES[site]
    assert state["identity"]["project_id"]

    # The inventory: right groups and host vars; a real SSH login through Ansible.
    inventory_path = cli.inventory(name)
    inv = yaml.safe_load(inventory_path.read_text())["all"]
    (host, hostvars), = inv["hosts"].items()
    groups = {g for g, v in inv["children"].items() if host in v["hosts"]}
    assert groups == ({"edge_devices"} if site == "edge" else {"gpu_servers", "cpu_servers"})
    assert fake.fip_pool_contains(hostvars["ansible_host"])
    assert hostvars["site"] == SITE_NAMES[site] and hostvars["lease_end"]
    assert hostvars["ansible_user"] == fake.ssh_user
    ping = cli.ping(inventory_path)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert f"{host} | SUCCESS" in ping.stdout and "pong" in ping.stdout, ping.stdout

    status = cli.status("--name", name)
    assert status.exit_code == 0, status.output
    assert "ACTIVE" in status.output or "Running" in status.output
    assert "answers" in status.output and "left" in status.output

    # Running chi-up again with the same name makes nothing new.
    before = len(creates(fake))
    again = cli.up(site, name)
    assert again.exit_code == 0, again.output
    assert "reusing lease" in again.output and "no new" in again.output
    assert len(creates(fake)) == before, [r.path for r in creates(fake)[before:]]

    down = cli.down("--name", name)
    assert down.exit_code == 0, down.output
    assert "removed lease" in down.output and "verified: nothing" in down.output
    assert not fake.leaked(), fake.leaked()
    assert not state_path.exists() and not inventory_path.exists()
    # chi-down is idempotent: nothing to do, still verified, still 0.
    assert cli.down("--name", name, "--site", site).exit_code == 0
    assert_no_secrets(fake, cli, ping.stdout + ping.stderr)


def test_dry_run_prints_the_plan_and_creates_nothing(cli: Cli):
    fake = cli.fake
    result = cli.up("tacc", "serve_dry", "--dry-run", "--start-on-hour", "--end-before-hour")
    assert result.exit_code == 0, result.output
    assert "POST reservation /leases" in result.output and "compute_liqid" in result.output
    assert ":00 UTC ->" in result.output and ":55 UTC" in result.output
    assert "nothing created (--dry-run)" in result.output
    assert not [r for r in fake.requests if r.method in ("POST", "PUT", "DELETE")
                and "/auth/tokens" not in r.path]
    assert not fake.leaked() and not cli.written_files()


def test_down_by_name_when_the_state_file_is_lost(cli: Cli):
    fake = cli.fake
    assert cli.up("uc", "serve_lost").exit_code == 0
    cli.state_file("serve_lost").unlink()
    without_site = cli.down("--name", "serve_lost")
    assert without_site.exit_code == 2 and "pass --site" in without_site.output
    down = cli.down("--name", "serve_lost", "--site", "uc")
    assert down.exit_code == 0, down.output
    assert "no state file" in down.output and "removed floating ip" in down.output
    assert not fake.leaked(), fake.leaked()
