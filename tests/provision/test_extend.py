"""chi-extend against the fake Chameleon, with the real python-chi and python-blazarclient: the
lease update Blazar does (prolong_for), the inventory's lease_end following it, and Blazar's
refusals, which leave the lease as it was."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from servebench.provision.cli import chi_extend
from tests.provision.cli_fixtures import Cli, assert_no_secrets, cli  # noqa: F401


def extend(cli: Cli, *args: str):
    return cli.run(chi_extend, ["--http-timeout", "3", *args])


def our_lease(cli: Cli, name: str):
    state = json.loads(cli.state_file(name).read_text())
    lease_id = next(r["id"] for r in state["resources"] if r["kind"] == "lease")
    return cli.fake.state.leases[lease_id]


def lease_end_in_inventory(cli: Cli, name: str) -> str:
    return host_vars(cli, name)["lease_end"]


def host_vars(cli: Cli, name: str) -> dict:
    hosts = yaml.safe_load(cli.inventory(name).read_text())["all"]["hosts"]
    (only,) = hosts.values()
    return only


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def test_extend_moves_the_lease_end_and_the_inventory_with_it(cli: Cli):
    name = "serve_extend"
    assert cli.up("tacc", name).exit_code == 0
    lease = our_lease(cli, name)
    old_end = lease.end
    assert host_vars(cli, name)["node_type"] == "compute_liqid"  # what the report prices it by

    result = extend(cli, "--name", name, "--by", "2h")
    assert result.exit_code == 0, result.output
    assert lease.end == old_end + 2 * 3600 and lease.status == "ACTIVE"
    # Through Blazar's lease update (python-blazarclient computes end + prolong_for, then PUTs).
    puts = cli.fake.requests_to("PUT", r"/reservation/v1/leases/[^/]+$")
    assert len(puts) == 1 and puts[0].status == 200, puts
    new_end = utc(lease.end).isoformat(timespec="minutes")
    assert lease_end_in_inventory(cli, name) == new_end
    assert stat.S_IMODE(cli.inventory(name).stat().st_mode) == 0o600  # it names the key file
    assert f"lease_end {new_end}" in result.output
    # 2 node-hours of compute_liqid at 4 SU (8 on a two-A100 node) from scripts/servebench/rates.yml.
    assert "the added time costs 8 SU (up to 16 SU" in result.output, result.output

    status = cli.status("--name", name)
    assert status.exit_code == 0, status.output
    left = utc(lease.end) - datetime.now(timezone.utc)
    assert f"time left: {left.seconds // 3600}h" in status.output, status.output
    assert cli.down("--name", name).exit_code == 0
    assert not cli.fake.leaked()
    assert_no_secrets(cli.fake, cli)


def test_a_refused_extension_is_exit_4_and_leaves_the_lease_as_it_was(cli: Cli):
    """Another project reserves our node from the minute our lease ends: Blazar cannot keep an
    ACTIVE reservation's host past that (NotEnoughHostsAvailable), and nothing changes."""
    name = "serve_extend_refused"
    assert cli.up("tacc", name).exit_code == 0
    lease = our_lease(cli, name)
    before = (lease.start, lease.end, lease.status, [h.id for h in lease.reservations[0].allocated])
    host = lease.reservations[0].allocated[0]
    state = cli.fake.state
    theirs = state.create_lease(
        lease.site, "another-project", "another-user", "their_lease", lease.end, lease.end + 86400,
        [{"resource_type": "physical:host", "min": 1, "max": 1,
          "resource_properties": json.dumps(["==", "$uid", host.uid])}], [])
    state_text = cli.state_file(name).read_text()
    inventory_text = cli.inventory(name).read_text()

    result = extend(cli, "--name", name, "--by", "1h")
    assert result.exit_code == 4, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: Blazar refused to extend lease serve_extend_refused by 1h"), line
    assert "Not enough hosts available" in line and "reserved by another lease" in line, line
    assert "the lease is unchanged" in line and "shorter --by" in line, line
    after = (lease.start, lease.end, lease.status, [h.id for h in lease.reservations[0].allocated])
    assert after == before
    assert cli.state_file(name).read_text() == state_text
    assert cli.inventory(name).read_text() == inventory_text

    state.delete_lease(theirs)
    assert cli.down("--name", name).exit_code == 0
    assert not cli.fake.leaked()


def test_extend_refuses_bad_input_before_touching_anything(cli: Cli):
    bad = extend(cli, "--name", "serve_none", "--by", "forever")
    assert bad.exit_code == 2 and "bad --by 'forever'" in bad.output, bad.output
    missing = extend(cli, "--name", "serve_none", "--by", "1h")
    assert missing.exit_code == 3 and "no state file at" in missing.output, missing.output
    nothing = extend(cli, "--by", "1h")
    assert nothing.exit_code == 3 and "no deployment found" in nothing.output, nothing.output
    assert not cli.fake.requests_to("PUT", r"/leases/")


# -- the fake's lease update, as strict as Blazar's ------------------------------------------

@pytest.fixture
def blazar(cli: Cli):
    """python-blazarclient, as python-chi makes it, pointed at the fake's CHI@TACC."""
    assert cli.up("tacc", "serve_client", "--dry-run").exit_code == 0
    from chi.clients import blazar as make

    return make()


def _lease_request(name: str, start: str, end: str) -> dict:
    return {"name": name, "start": start, "end": end, "events": [],
            "reservations": [{"resource_type": "physical:host", "min": 1, "max": 1,
                              "resource_properties": json.dumps(["==", "$node_type", "compute_liqid"]),
                              "hypervisor_properties": ""}]}


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def test_the_fake_moves_a_pending_lease_to_a_free_host_and_refuses_when_none_is(cli: Cli, blazar):
    """A PENDING reservation may change hosts (Blazar's _update_allocations); an ACTIVE one may
    not, and with no free host left neither can."""
    soon = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(hours=1)
    mine = blazar.lease.create(**_lease_request("pending_one", _at(soon), _at(soon + timedelta(hours=2))))
    lease = cli.fake.state.leases[mine["id"]]
    first_host = lease.reservations[0].allocated[0]
    blocker = blazar.lease.create(**_lease_request("blocker", _at(soon + timedelta(hours=2)),
                                                   _at(soon + timedelta(hours=5))))
    blocked = cli.fake.state.leases[blocker["id"]].reservations[0].allocated[0]
    assert blocked.id == first_host.id  # the free host at that time was the same one

    moved = blazar.lease.update(mine["id"], prolong_for="1h")
    assert moved["end_date"].startswith((soon + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
    assert lease.reservations[0].allocated[0].id != first_host.id

    # Both compute_liqid nodes are now taken after the new end: no host to move to.
    blazar.lease.create(**_lease_request("second_blocker", _at(soon + timedelta(hours=3)),
                                         _at(soon + timedelta(hours=5))))
    end_before = lease.end
    with pytest.raises(Exception, match="Not enough hosts available"):
        blazar.lease.update(mine["id"], prolong_for="1h")
    assert lease.end == end_before
    for lease_json in blazar.lease.list():
        blazar.lease.delete(lease_json["id"])


@pytest.mark.parametrize("values, words", [
    ({"end_date": "2000-01-01 00:00"}, "End date must be later than current and start date"),
    ({"start_date": "2000-01-01 00:00"}, "Cannot modify the start date of already started leases"),
    ({"end_date": "tomorrow"}, "is an invalid date"),
    ({"prolong_for": "1h"}, "Invalid input for field/attribute prolong_for"),
], ids=["end_in_the_past", "start_of_a_started_lease", "bad_date", "unknown_field"])
def test_the_fake_refuses_updates_blazar_refuses(cli: Cli, blazar, values, words):
    made = blazar.lease.create(**_lease_request("started", "now", _at(
        datetime.now(timezone.utc) + timedelta(hours=2))))
    lease = cli.fake.state.leases[made["id"]]
    before = (lease.start, lease.end)
    with pytest.raises(Exception, match=words):
        blazar.lease.request_manager.put(f"/leases/{made['id']}", body=values)
    assert (lease.start, lease.end) == before
    blazar.lease.delete(made["id"])
