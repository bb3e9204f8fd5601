"""chi-up / chi-status / chi-down against CHI@Edge's Zun as it is: ``execute`` answers
``exit_code: null`` after 5 s while the command goes on, ``delete(force=True)`` is refused to a
project member (403), and a pod restart leaves the container with a fresh file system.
In-memory fake (fast); the Docker-backed end to end is in tests/ansible/test_edge_emulated.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

import chi
import chi.container
import chi.lease
from servebench.errors import ProvisionError
from servebench.provision import container as zun_bootstrap

from .cli_fixtures import assert_no_secrets, cli  # noqa: F401  (cli is a fixture)
from .test_fake_chameleon import use, zun_takes_device_profiles  # noqa: F401  (a fixture)


def _execs(fake) -> list[str]:
    return [dict(r.query)["command"] for r in fake.requests_to("POST", r"/execute$")]


def test_foreground_apt_get_gets_no_exit_code_so_the_tutorial_way_fails(
        fake_chameleon, zun_takes_device_profiles):
    """What broke the old bootstrap: each step run in the foreground, exit code required."""
    fake = fake_chameleon
    use(fake, "CHI@Edge")
    lease = chi.lease.Lease("serve_edge_old", duration=timedelta(hours=1))
    lease.add_device_reservation(amount=1, machine_type="raspberrypi5")
    lease.submit(wait_for_active=True, wait_timeout=20, show=None)
    made = chi.container.Container("old-way", image_ref="ubuntu", exposed_ports=["22"],
                                   reservation_id=lease.device_reservations[0]["id"])
    made.submit(wait_for_active=True, wait_timeout=20, show=None)
    result = chi.container.execute(made.id, "sh -c 'apt-get update -qq'")
    assert result["exit_code"] is None and "Reading package lists" in result["output"]
    chi.container.destroy_container(made.id, stop=True)
    lease.delete()
    assert not fake.leaked()


def test_chi_up_edge_bootstraps_ssh_through_five_second_execs(cli):
    fake = cli.fake
    up = cli.up("edge", "serve_zun")
    assert up.exit_code == 0, up.output
    execs = _execs(fake)
    # Long steps ran detached, in one uploaded script; every other exec is a short poll.
    assert zun_bootstrap.START in execs
    assert not any(re.search(r"\bapt(-get)?\b", e) for e in execs), execs
    polls = [e for e in execs if e == zun_bootstrap.LIST]
    assert len(polls) >= fake.timing.slow_exec_polls  # it saw "running" before "ready"
    assert "SSH bootstrap in the container: running" in up.output
    assert cli.ping(cli.inventory("serve_zun")).returncode == 0
    down = cli.down("--name", "serve_zun")
    assert down.exit_code == 0, down.output
    assert not fake.leaked()
    # Never the admin-only force delete.
    assert not [r for r in fake.requests_to("DELETE", r"/containers/")
                if dict(r.query).get("force") == "True"]
    assert_no_secrets(fake, cli)


def test_bootstrap_failure_says_why_and_rolls_back(cli):
    fake = cli.fake
    fake.state.unavailable_packages.add("openssh-server")
    up = cli.up("edge", "serve_nomirror")
    assert up.exit_code == ProvisionError.exit_code, up.output
    assert "SSH bootstrap in the container exited 100" in up.output
    assert "E: Unable to locate package openssh-server" in up.output
    assert "rolled back, nothing of this run is left" in up.output
    assert not fake.leaked()


def test_bootstrap_has_an_overall_deadline(cli):
    fake = cli.fake
    fake.timing.slow_exec_polls = 10 ** 6  # apt-get never finishes
    args = [a if a != "20" else "2" for a in cli.up_args("edge", "serve_slow")]
    from servebench.provision.cli import chi_up

    up = cli.run(chi_up, args)
    assert up.exit_code == ProvisionError.exit_code, up.output
    assert "SSH bootstrap in the container still running after 2s" in up.output
    assert not fake.leaked()


def test_pod_restart_is_reported_by_chi_status_and_repaired_by_chi_up(cli):
    fake = cli.fake
    assert cli.up("edge", "serve_pod").exit_code == 0
    (only,) = fake.state.containers.values()
    fake.state.restart_container(only)
    status = cli.status("--name", "serve_pod")
    assert status.exit_code != 0
    assert "its file system was reset" in status.output, status.output
    again = cli.up("edge", "serve_pod")
    assert again.exit_code == 0, again.output
    assert "reusing container" in again.output and "installing and starting sshd" in again.output
    assert len(fake.state.containers) == 1 and only.restarts == 1
    assert cli.ping(cli.inventory("serve_pod")).returncode == 0
    assert cli.status("--name", "serve_pod").exit_code == 0
    assert cli.down("--name", "serve_pod").exit_code == 0 and not fake.leaked()


def test_rollback_and_chi_down_leave_nothing_when_deletes_are_refused(cli):
    fake = cli.fake
    # A failure after the container exists: the rollback deletes it (stop, never force).
    fake.inject("PUT", r"/floatingips/[^/]+$", "http500")
    failed = cli.up("edge", "serve_refused")
    assert failed.exit_code == ProvisionError.exit_code, failed.output
    assert "rolled back, nothing of this run is left" in failed.output
    assert not fake.leaked()
    # Every container delete refused: the lease's deletion takes the container with it.
    assert cli.up("edge", "serve_refused").exit_code == 0
    refused = fake.inject("DELETE", r"/containers/", "http500", times=None)
    down = cli.down("--name", "serve_refused")
    assert down.exit_code == 0, down.output
    assert refused.hits >= 1 and "verified: nothing of serve_refused remains" in down.output
    assert not fake.leaked()
