"""The fake Chameleon, driven by the real python-chi over HTTP (not by servebench's CLI).

These tests pin down what the fake must do for chi-up / chi-down to be tested against it: the
routes python-chi really calls, realistic state changes, real SSH on floating IPs, python-chi's
own quirks reproduced (floating IPs leak through its delete paths), each injected fault seen by
the client, and a full account of what is left.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import requests
from fabric import Connection
from paramiko.client import WarningPolicy

import chi
import chi.container
import chi.context
import chi.hardware
import chi.lease
import chi.network
import chi.server
from blazarclient.exception import BlazarClientException
from keystoneauth1 import exceptions as ksa_exceptions
from zunclient.exceptions import InvalidAttribute
from zunclient.v1 import containers as zun_containers

from tests.fakechi import FakeChameleon
from tests.fakechi.fixtures import point_chi_at
from tests.support.sshd import ssh_answers

CUDA_IMAGE = "CC-Ubuntu24.04-CUDA"


def use(fake: FakeChameleon, site: str) -> None:
    chi.use_site(site)
    chi.context.use_project(fake.identity.project_name)


def node_lease(name: str = "serve_model_test", node_type: str = "compute_liqid", amount: int = 1,
               wait: bool = True) -> chi.lease.Lease:
    lease = chi.lease.Lease(name, duration=timedelta(hours=3))
    lease.add_node_reservation(amount=amount, node_type=node_type)
    lease.submit(wait_for_active=wait, wait_timeout=20, show=None)
    return lease


def ssh_run(fake: FakeChameleon, address: str, command: str = "true") -> int:
    conn = Connection(address, user=fake.ssh_user, port=fake.ssh_port, connect_timeout=5,
                      connect_kwargs={"key_filename": str(fake.ssh_key), "look_for_keys": False,
                                      "allow_agent": False})
    conn.client.set_missing_host_key_policy(WarningPolicy)
    with conn:
        # in_stream=False: under pytest (or any headless run) stdin is not a terminal to forward.
        return conn.run(command, hide=True, timeout=10, in_stream=False).exited


def keypair(fake: FakeChameleon, name: str = "servebench-key"):
    return chi.server.update_keypair(name, (fake.ssh_key.with_suffix(".pub")).read_text())


@pytest.fixture
def zun_takes_device_profiles(monkeypatch):
    """Upstream zunclient refuses the ``device_profiles`` key Container.submit always sends;
    Chameleon's fork accepts it. The workaround servebench uses."""
    monkeypatch.setattr(zun_containers, "CREATION_ATTRIBUTES",
                        [*zun_containers.CREATION_ATTRIBUTES, "device_profiles"])


def test_sites_json_and_token_point_python_chi_at_each_site(fake_chameleon):
    sites = chi.context.list_sites()
    for name in ("CHI@TACC", "CHI@UC", "CHI@Edge"):
        assert sites[name]["web"] == fake_chameleon.site_web(name)
        chi.use_site(name)
        assert chi.context.get("auth_url") == fake_chameleon.sites[name]
        assert chi.lease.list_leases() == []
    token_requests = fake_chameleon.requests_to("POST", r"^/v3/auth/tokens$")
    assert {r.site for r in token_requests} == {"CHI@TACC", "CHI@UC", "CHI@Edge"}


def test_server_at_tacc_answers_real_ssh_then_teardown_leaves_nothing(fake_chameleon):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    lease = node_lease()
    assert lease.status == "ACTIVE"
    keypair(fake)
    server = chi.server.Server("serve-model", reservation_id=lease.node_reservations[0]["id"],
                               image_name=CUDA_IMAGE, key_name="servebench-key")
    server.submit(wait_for_active=True, wait_timeout=20, show=None)
    assert server.status == "ACTIVE"
    address = server.associate_floating_ip()
    assert fake.fip_pool_contains(address)
    assert address in fake.ssh_addresses()
    assert ssh_run(fake, address, "test -d /") == 0
    assert {r.path.split("/")[1] for r in fake.requests} >= {"v3", "reservation", "compute", "network", "image"}

    # python-chi's own delete path "releases" the address with a DELETE to a wrong path
    # (/v2.0/<id>, not /v2.0/floatingips/<id>), which fails silently: the address stays allocated, as on Chameleon.
    server.delete()
    assert fake.requests_to("DELETE", r"^/network/v2.0/[0-9a-f-]+$")[-1].status == 404
    assert [f["address"] for f in fake.leaked()["floating_ips"]] == [address]
    assert not ssh_answers(address, fake.ssh_port)
    chi.network.deallocate_floating_ip(address)
    lease.delete()
    assert not fake.leaked()


def test_lease_end_deletes_its_servers_but_not_their_floating_ips(fake_chameleon):
    fake = fake_chameleon
    use(fake, "CHI@UC")
    lease = node_lease(node_type="compute_gigaio")
    keypair(fake)
    server = chi.server.Server("uc-node", reservation_id=lease.node_reservations[0]["id"],
                               image_name=CUDA_IMAGE, key_name="servebench-key")
    server.submit(wait_for_active=True, wait_timeout=20, show=None)
    address = server.associate_floating_ip()
    lease.delete()
    leaked = fake.leaked()
    assert list(leaked) == ["floating_ips"] and leaked["floating_ips"][0]["port_id"] is None
    assert not ssh_answers(address, fake.ssh_port)
    chi.network.deallocate_floating_ip(address)
    assert not fake.leaked()


@pytest.mark.parametrize("key_delivery", ["authorized_keys upload", "key upload + cat"])
def test_edge_container_becomes_an_ssh_host_through_execute_and_upload(
        fake_chameleon, zun_takes_device_profiles, tmp_path, key_delivery):
    fake = fake_chameleon
    use(fake, "CHI@Edge")
    lease = chi.lease.Lease("serve_edge_test", duration=timedelta(hours=2))
    lease.add_device_reservation(amount=1, machine_type="raspberrypi5")
    lease.submit(wait_for_active=True, wait_timeout=20, show=None)
    container = chi.container.Container(
        "serve-edge", image_ref="arm64v8/ubuntu:24.04", exposed_ports=["22"],
        reservation_id=lease.device_reservations[0]["id"], command=["sleep", "infinity"],
        device_profiles=["pi_gpio"])
    container.submit(wait_for_active=True, wait_timeout=20, show=None)
    assert container.status == "Running"
    address = container.associate_floating_ip()
    assert address and address not in fake.ssh_addresses()

    # sshd cannot start before openssh-server is installed.
    output, code = container.execute("/usr/sbin/sshd")
    assert code == "127" and "not found" in output
    # CHI@Edge's Zun stops waiting after 5 s: apt-get reports no exit code, and goes on.
    assert container.execute("apt-get install -y openssh-server")[1] == "None"  # str()ed by chi
    public_key = fake.ssh_key.with_suffix(".pub").read_text()
    if key_delivery == "authorized_keys upload":
        (tmp_path / "authorized_keys").write_text(public_key)
        container.upload(str(tmp_path / "authorized_keys"), "/root/.ssh")
    else:
        (tmp_path / "servebench.pub").write_text(public_key)
        container.upload(str(tmp_path / "servebench.pub"), "/tmp")
        assert container.execute("sh -c 'cat /tmp/servebench.pub >> /root/.ssh/authorized_keys'")[1] == "0"
    assert container.execute("sh -c 'mkdir -p /run/sshd && /usr/sbin/sshd'")[1] == "0"
    assert ssh_run(fake, address) == 0
    execs = [dict(r.query)["command"] for r in fake.requests_to("POST", r"/execute$")]
    assert execs[-1] == "sh -c 'mkdir -p /run/sshd && /usr/sbin/sshd'"

    with pytest.raises(Exception, match="403"):
        container.delete()  # python-chi sends force=True: admin-only in Zun's default policy
    chi.container.destroy_container(container.id, stop=True)
    assert list(fake.leaked()) == ["leases", "floating_ips"]  # Container.delete keeps the address
    chi.network.deallocate_floating_ip(address)
    lease.delete()
    assert not fake.leaked()
    assert not ssh_answers(address, fake.ssh_port)


def test_resubmitting_by_name_finds_what_exists(fake_chameleon, zun_takes_device_profiles):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    lease = node_lease()
    again = chi.lease.Lease(lease.name, duration=timedelta(hours=3))
    again.add_node_reservation(amount=1, node_type="compute_liqid")
    again.submit(idempotent=True, wait_for_active=True, wait_timeout=20, show=None)
    assert again.id == lease.id == chi.lease.get_lease(lease.name).id
    keypair(fake)
    make = lambda: chi.server.Server("serve-model", reservation_id=lease.node_reservations[0]["id"],  # noqa: E731
                                     image_name=CUDA_IMAGE, key_name="servebench-key")
    make().submit(wait_for_active=True, wait_timeout=20, show=None)
    twin = make().submit(idempotent=True, wait_for_active=True, wait_timeout=20, show=None)
    assert twin.id == chi.server.get_server("serve-model").id
    assert twin.network_name == "sharednet1" and twin.image_name == CUDA_IMAGE

    use(fake, "CHI@Edge")
    edge = chi.lease.Lease("edge", duration=timedelta(hours=1))
    edge.add_device_reservation(amount=1, machine_type="raspberrypi5")
    edge.submit(wait_for_active=True, wait_timeout=20, show=None)
    make_c = lambda: chi.container.Container("serve-edge", image_ref="ubuntu",  # noqa: E731
                                             reservation_id=edge.device_reservations[0]["id"])
    first = make_c()
    first.submit(wait_for_active=True, wait_timeout=20, show=None)
    second = make_c()
    found = second.submit(idempotent=True, wait_for_active=True, wait_timeout=20, show=None)
    assert found.id == first.id and second.id is None  # python-chi leaves self.id unset
    live = fake.live_resources()
    assert (len(live["leases"]), len(live["servers"]), len(live["containers"])) == (2, 1, 1)


def test_node_lookup_through_chi_hardware(fake_chameleon):
    use(fake_chameleon, "CHI@TACC")
    nodes = chi.hardware.get_nodes(node_type="compute_liqid")
    assert sorted(n.name for n in nodes) == ["liqid-01", "liqid-02"] and all(n.reservable for n in nodes)
    use(fake_chameleon, "CHI@Edge")
    # Upstream python-blazarclient has no device manager (Chameleon's fork has): get_devices
    # cannot work with the declared dependencies, whatever the testbed answers.
    with pytest.raises(AttributeError, match="device"):
        chi.hardware.get_devices(device_type="raspberrypi5")
    assert fake_chameleon.requests_to("GET", r"^/edge-hw-discovery/devices$")


def test_upstream_zunclient_rejects_device_profiles(fake_chameleon, monkeypatch):
    # The list as upstream ships it, whatever code run before in this process appended.
    monkeypatch.setattr(zun_containers, "CREATION_ATTRIBUTES",
                        [a for a in zun_containers.CREATION_ATTRIBUTES if a != "device_profiles"])
    use(fake_chameleon, "CHI@Edge")
    with pytest.raises(InvalidAttribute):
        chi.container.Container("c", image_ref="ubuntu", device_profiles=["pi_gpio"]).submit(show=None)
    assert not fake_chameleon.requests_to("POST", r"/containers$")


def test_states_move_one_per_poll_when_asked(fake_chameleon, zun_takes_device_profiles):
    fake = fake_chameleon
    fake.timing.steps_per_poll = 1
    use(fake, "CHI@Edge")
    lease = chi.lease.Lease("slow", duration=timedelta(hours=1))
    lease.add_device_reservation(amount=1, machine_type="raspberrypi5")
    lease.submit(wait_for_active=False, show=None)
    blazar = chi.blazar()
    assert [blazar.lease.get(lease.id)["status"] for _ in range(2)] == ["ACTIVE", "ACTIVE"]
    zun = chi.zun()
    created = zun.containers.create(name="c1", image="ubuntu", device_profiles=[],
                                    hints={"reservation": lease.device_reservations[0]["id"]})
    seen = [created.status] + [zun.containers.get(created.uuid).status for _ in range(3)]
    assert seen == ["Creating", "Created", "Running", "Running"]
    zun.containers.delete(created.uuid, stop=True)
    lease.delete()
    assert not fake.leaked()


def test_future_lease_waits_for_its_start_and_ends_at_its_end(fake_chameleon):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    start = chi.lease.utcnow() + timedelta(hours=1)
    lease = chi.lease.Lease("later", start_date=start, end_date=start + timedelta(hours=1))
    lease.add_node_reservation(amount=1, node_type="compute_liqid")
    lease.submit(wait_for_active=False, show=None)
    assert lease.status == "PENDING"
    fake.advance(3600 + 60)
    assert lease.status == "ACTIVE"
    fake.advance(3600)
    assert lease.status == "TERMINATED"
    assert fake.live_resources()["leases"][0]["status"] == "TERMINATED"  # still there until deleted
    lease.delete()
    assert not fake.leaked()


def test_not_enough_hosts_is_blazars_own_error(fake_chameleon):
    use(fake_chameleon, "CHI@TACC")
    with pytest.raises(chi.exception.ResourceError, match="Unable to make lease"):
        node_lease(amount=3)  # the site has two compute_liqid nodes
    fake_chameleon.inject("POST", r"/leases$", "no_hosts")
    with pytest.raises(BlazarClientException, match="Not enough hosts available") as caught:
        chi.blazar().lease.create(name="x", start="now", end=_in_hours(1), events=[],
                                  reservations=[_host_reservation("compute_liqid")])
    assert caught.value.kwargs["code"] == 500
    assert not fake_chameleon.leaked()


def test_http_500_reaches_the_client_once(fake_chameleon):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    injection = fake.inject("POST", r"/reservation/v1/leases$", 500)
    with pytest.raises(chi.exception.ResourceError):
        node_lease()
    assert injection.hits == 1 and not fake.leaked()
    assert node_lease().status == "ACTIVE"  # the next request goes through


def test_hang_outlasts_a_client_deadline_and_is_bounded(fake_chameleon):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    lease = node_lease()
    fake.inject("GET", r"/leases/[^/]+$", "hang", seconds=2)
    chi.set("timeout", 0.3)
    began = time.monotonic()
    # keystoneauth reports a read timeout as ConnectTimeout.
    with pytest.raises(ksa_exceptions.ConnectTimeout):
        lease.refresh()
    assert time.monotonic() - began < 1.5
    # Without a deadline of its own the client waits out the hang and gets a 500.
    fake.inject("GET", r"/sites\.json$", "hang", seconds=0.5)
    began = time.monotonic()
    assert requests.get(f"{fake.url}/sites.json", timeout=5).status_code == 500
    assert 0.5 <= time.monotonic() - began < 3


def test_error_states_are_seen_by_the_client(fake_chameleon, zun_takes_device_profiles):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    fake.inject("POST", r"/leases$", "error_state")
    broken = node_lease(name="broken")
    assert broken.status == "ERROR"  # python-chi's wait returns on ERROR without raising
    broken.delete()
    lease = node_lease()
    keypair(fake)
    fake.inject("POST", r"/servers$", "error_state")
    server = chi.server.Server("doomed", reservation_id=lease.node_reservations[0]["id"],
                               image_name=CUDA_IMAGE, key_name="servebench-key")
    server.submit(wait_for_active=True, wait_timeout=20, show=None)
    assert server.status == "ERROR"
    server.delete()
    lease.delete()

    use(fake, "CHI@Edge")
    lease = chi.lease.Lease("edge", duration=timedelta(hours=1))
    lease.add_device_reservation(amount=1, machine_type="raspberrypi5")
    lease.submit(wait_for_active=True, wait_timeout=20, show=None)
    fake.inject("GET", r"/containers/[^/]+$", "error_state")
    container = chi.container.Container("doomed", image_ref="ubuntu",
                                        reservation_id=lease.device_reservations[0]["id"])
    container.submit(wait_for_active=True, wait_timeout=20, show=None)
    assert container.status == "Error"
    chi.container.destroy_container(container.id)  # not Running: no stop, no force
    lease.delete()
    assert not fake.leaked()


def test_never_active_lease_stays_pending(fake_chameleon):
    fake = fake_chameleon
    use(fake, "CHI@TACC")
    fake.inject("POST", r"/leases$", "never_active")
    lease = node_lease(wait=False)
    assert [lease.status for _ in range(3)] == ["PENDING"] * 3
    lease.delete()
    assert not fake.leaked()


def test_server_without_an_active_reservation_fails_like_nova(fake_chameleon):
    use(fake_chameleon, "CHI@TACC")
    keypair(fake_chameleon)
    server = chi.server.Server("no-lease", image_name=CUDA_IMAGE, key_name="servebench-key")
    server.submit(wait_for_active=True, wait_timeout=20, show=None)
    assert server.status == "ERROR"
    assert "No valid host" in chi.nova().servers.get(server.id).fault["message"]
    server.delete()
    assert not fake_chameleon.leaked()


def test_credentials_are_checked_and_secrets_never_logged(fake_chameleon, monkeypatch):
    fake = fake_chameleon
    point_chi_at(fake, monkeypatch, env=fake.password_env)
    use(fake, "CHI@UC")
    assert chi.lease.list_leases() == []
    assert chi.context.get_project_name() == fake.identity.project_name
    wrong = dict(fake.env, OS_APPLICATION_CREDENTIAL_SECRET="not-the-secret")
    point_chi_at(fake, monkeypatch, env=wrong)
    chi.use_site("CHI@UC")
    with pytest.raises(ksa_exceptions.Unauthorized):
        chi.lease.list_leases()
    assert len(fake.secrets) >= 3  # password, application-credential secret, a token
    log = json.dumps([r.__dict__ for r in fake.requests])
    assert not [s for s in fake.secrets if s in log]


def test_stop_releases_hanging_requests_and_stops_every_sshd(tmp_path):
    answers = []
    with FakeChameleon(root=tmp_path) as fake:
        fake.ssh.up(fake.state.site("CHI@TACC").fip_pool[0], [fake.ssh_key.with_suffix(".pub").read_text()])
        address = fake.ssh_addresses()[0]
        assert ssh_answers(address, fake.ssh_port)
        fake.inject("GET", r"/sites\.json$", "hang", seconds=60)
        waiter = threading.Thread(target=lambda: answers.append(
            requests.get(f"{fake.url}/sites.json", timeout=30).status_code))
        waiter.start()
        deadline = time.monotonic() + 5
        while not fake.faults.injections[0].hits and time.monotonic() < deadline:
            time.sleep(0.02)
        began = time.monotonic()
    waiter.join(10)
    assert answers == [500] and time.monotonic() - began < 3
    assert not ssh_answers(address, fake.ssh_port)


def test_states_can_move_with_time(fake_chameleon):
    fake = fake_chameleon
    fake.timing.steps_per_poll, fake.timing.seconds_per_step = 0, 0.3
    use(fake, "CHI@TACC")
    lease = node_lease(wait=False)
    assert lease.status == "PENDING"
    time.sleep(0.35)
    assert lease.status == "ACTIVE"


def _in_hours(hours: int) -> str:
    return (chi.lease.utcnow() + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")


def _host_reservation(node_type: str) -> dict:
    return {"resource_type": "physical:host", "min": 1, "max": 1, "hypervisor_properties": "",
            "resource_properties": json.dumps(["==", "$node_type", node_type])}

