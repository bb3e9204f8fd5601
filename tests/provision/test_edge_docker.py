"""chi-up --site edge against a fake whose Zun runs real Docker containers (tests/fakechi/dockerzun.py):
``execute`` is a real ``docker exec`` cut at 5 s, so apt-get really outlives it; openssh-server
is really installed in the container, a real sshd answers on the floating IP, Ansible reaches
it; a pod restart (a fresh container from the image) is reported and repaired; chi-down leaves
no container. amd64 here (native speed); the arm64 edge end to end is in
tests/ansible/test_edge_emulated.py."""

from __future__ import annotations

import subprocess

import pytest

from tests.fakechi.fixtures import docker_backed
from tests.support import docker

from .cli_fixtures import assert_no_secrets, cli  # noqa: F401  (cli is a fixture)

pytestmark = pytest.mark.slow
IMAGE = "servebench-test/base:bookworm-amd64"


@pytest.fixture
def fake_chameleon(tmp_path, monkeypatch):
    with docker_backed(tmp_path, monkeypatch, lambda: docker.ensure_base_image(IMAGE)) as fake:
        yield fake


def test_real_container_gets_sshd_through_five_second_execs_and_survives_a_restart(cli):
    fake = cli.fake
    name = "serve_docker"
    up = cli.up("edge", name, "--wait-timeout", "600")
    assert up.exit_code == 0, up.output
    (made,) = fake.state.containers.values()
    assert made.pod and fake.docker_zun.made[made.id] in subprocess.run(
        [fake.docker_zun.docker, "ps", "--format", "{{.Names}}"], capture_output=True,
        text=True, check=False).stdout
    ping = cli.ping(cli.inventory(name))
    assert ping.returncode == 0, ping.stdout + ping.stderr

    fake.state.restart_container(made)  # a pod restart: the image's fresh file system
    status = cli.status("--name", name)
    assert status.exit_code != 0 and "its file system was reset" in status.output, status.output
    again = cli.up("edge", name, "--wait-timeout", "600")
    assert again.exit_code == 0, again.output
    assert "reusing container" in again.output
    assert cli.ping(cli.inventory(name)).returncode == 0

    down = cli.down("--name", name)
    assert down.exit_code == 0, down.output
    assert not fake.leaked() and not fake.docker_zun.existing()
    assert_no_secrets(fake, cli)
