"""The pure parts of the provisioning commands: lease window maths, durations and start times,
names, reservations, the state file, the inventory writer, credentials. No testbed needed."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from servebench.errors import ConfigError, StateError, UsageError
from servebench.provision import credentials, inventory, lease
from servebench.provision.sites import SITES, get_site
from servebench.provision.state import Identity, State, default_path, instance_name

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 14, 20, 30, tzinfo=UTC)


# -- lease window ------------------------------------------------------------------------------

def test_window_now_runs_for_the_duration():
    window = lease.compute_window(None, timedelta(hours=3), NOW)
    assert window.blazar_start == "now" and window.blazar_end == "2026-11-23 17:20"


def test_start_on_hour_moves_up_to_the_next_full_hour_unless_on_one():
    assert lease.compute_window(None, timedelta(hours=2), NOW, start_on_hour=True).blazar_start \
        == "2026-11-23 15:00"
    on_hour = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert lease.compute_window(on_hour, timedelta(hours=2), NOW, start_on_hour=True).start == on_hour


@pytest.mark.parametrize("start,expected_end", [
    (datetime(2026, 11, 23, 15, 0, tzinfo=UTC), "2026-11-23 17:55"),   # 15:00 + 3h = 18:00
    (datetime(2026, 11, 23, 15, 20, tzinfo=UTC), "2026-11-23 17:55"),  # 18:20 -> 18:00 - 5 min
])
def test_end_before_hour_ends_five_minutes_before_a_full_hour(start, expected_end):
    window = lease.compute_window(start, timedelta(hours=3), NOW, end_before_hour=True)
    assert window.blazar_end == expected_end


def test_tutorial_habits_together():
    window = lease.compute_window(None, timedelta(hours=3), NOW, True, True)
    assert (window.blazar_start, window.blazar_end) == ("2026-11-23 15:00", "2026-11-23 17:55")
    assert "(2h55m)" in window.describe()


def test_end_before_hour_refuses_a_lease_it_would_shrink_to_nothing():
    with pytest.raises(UsageError, match="use a longer --duration"):
        lease.compute_window(datetime(2026, 11, 23, 15, 50, tzinfo=UTC), timedelta(minutes=15),
                             NOW, end_before_hour=True)


def test_a_start_in_the_past_is_refused():
    with pytest.raises(UsageError, match="in the past"):
        lease.compute_window(NOW - timedelta(hours=1), timedelta(hours=3), NOW)


@pytest.mark.parametrize("text,expected", [
    ("3h", timedelta(hours=3)), ("90m", timedelta(minutes=90)), ("2h30m", timedelta(hours=2.5)),
    ("1d", timedelta(days=1)), ("1.5h", timedelta(hours=1.5)), ("4", timedelta(hours=4)),
    ("2H 15min", timedelta(hours=2, minutes=15)),
])
def test_durations(text, expected):
    assert lease.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3x", "h", "-2h", "5m", "8d", "3h2", "three hours"])
def test_bad_durations(text):
    with pytest.raises(UsageError, match="bad --duration"):
        lease.parse_duration(text)


def test_start_times_are_utc():
    assert lease.parse_start("now") is None
    assert lease.parse_start("2026-11-23T14:00Z") == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert lease.parse_start("2026-11-23T16:00+02:00") == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    local = lease.parse_start("2026-11-23 14:00")
    assert local == datetime(2026, 11, 23, 14, 0).astimezone().astimezone(UTC)
    with pytest.raises(UsageError, match="bad --start"):
        lease.parse_start("tomorrow")


def test_lease_dates_read_blazar_json():
    start, end = lease.lease_dates({"start_date": "2026-11-22T14:00:00.000000",
                                    "end_date": "2026-11-22T17:00:00.000000"})
    assert (start.hour, end.hour, start.tzinfo) == (14, 17, UTC)
    assert lease.format_remaining(end, start) == "3h left"
    assert lease.format_remaining(start, end) == "ended"


# -- names and reservations --------------------------------------------------------------------

def test_default_names_follow_the_course():
    assert SITES["tacc"].default_lease_name("ab12") == "serve_model_ab12"
    assert SITES["edge"].default_lease_name("ab12") == "serve_edge_ab12"
    assert lease.user_slug("Jane.Doe@NYU") == "janedoenyu"
    assert instance_name("serve_model_ab12") == "node-serve-model-ab12"
    with pytest.raises(UsageError, match="bad --name"):
        lease.validate_name("my lease!")
    with pytest.raises(UsageError, match="unknown site 'mars': choose one of tacc, uc, edge"):
        get_site("mars")


def _props(reservations):
    (only,) = reservations
    return only["resource_type"], json.loads(only["resource_properties"])


def test_reservations_by_node_type_node_name_machine_type_and_device():
    window = lease.compute_window(None, timedelta(hours=3), NOW)
    assert _props(lease.Reservation(SITES["tacc"]).requests("x", window)) == \
        ("physical:host", ["==", "$node_type", "compute_liqid"])
    assert _props(lease.Reservation(SITES["uc"]).requests("x", window)) == \
        ("physical:host", ["==", "$node_type", "compute_gigaio"])
    assert _props(lease.Reservation(SITES["uc"], node_name="gigaio-01").requests("x", window)) == \
        ("physical:host", ["==", "$node_name", "gigaio-01"])
    assert _props(lease.Reservation(SITES["edge"]).requests("x", window)) == \
        ("device", ["==", "$machine_name", "raspberrypi5"])
    uid = "5c1e0b8e-8c4c-4e0b-9a0e-0c9f1d2a3b4c"
    assert _props(lease.Reservation(SITES["edge"], device=uid).requests("x", window)) == \
        ("device", ["==", "$uid", uid])
    assert _props(lease.Reservation(SITES["edge"], device="rpi5-01").requests("x", window)) == \
        ("device", ["==", "$name", "rpi5-01"])


# -- state file --------------------------------------------------------------------------------

IDENTITY = Identity("tacc", "CHI@TACC", "https://chi.tacc.chameleoncloud.org:5000/v3", "p1", "CHI-1")


def test_state_is_0600_atomic_and_records_before_the_id_exists(tmp_path):
    path = default_path("serve_x", tmp_path)
    state = State.new(path, "serve_x", IDENTITY)
    entry = state.record("server", "node-serve-x", run="r1")
    on_disk = json.loads(path.read_text())
    assert on_disk["resources"] == [{"kind": "server", "name": "node-serve-x", "id": None, "run": "r1"}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state.update(entry, id="abc")
    assert json.loads(path.read_text())["resources"][0]["id"] == "abc"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    assert State.load(path).identity == IDENTITY


def test_state_of_another_project_or_site_is_refused(tmp_path):
    state = State.new(default_path("serve_x", tmp_path), "serve_x", IDENTITY)
    other_project = Identity("tacc", "CHI@TACC", IDENTITY.auth_url, "p2", "CHI-2")
    with pytest.raises(StateError, match="belongs to project CHI-1 at CHI@TACC") as info:
        state.check_identity(other_project)
    assert info.value.exit_code == 3
    with pytest.raises(StateError):
        state.check_identity(Identity("uc", "CHI@UC", "https://chi.uc.chameleoncloud.org:5000/v3", "p1"))
    state.check_identity(Identity(**{**IDENTITY.__dict__, "auth_url": IDENTITY.auth_url + "/"}))


def test_unreadable_state_files_are_state_errors(tmp_path):
    bad = tmp_path / "state-bad.json"
    bad.write_text("{not json")
    with pytest.raises(StateError, match="unreadable"):
        State.load(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(StateError, match="not a servebench state file"):
        State.load(bad)
    with pytest.raises(StateError, match="no state file"):
        State.load(tmp_path / "missing.json")


# -- inventory ---------------------------------------------------------------------------------

def _host(kind="server", has_gpu=True, name="node-a"):
    return inventory.Host(name=name, address="127.0.0.9", port=22, user="cc" if kind == "server" else "root",
                          key=Path("/keys/id"), site="CHI@TACC", lease_end="2026-11-23T17:00+00:00",
                          kind=kind, has_gpu=has_gpu)


def test_inventory_groups_a_gpu_server_as_both_cpu_and_gpu(tmp_path):
    path = inventory.write(tmp_path / "inventory" / "chi_x.yml", "x",
                           [_host(), _host("container", False, "node-e"), _host(has_gpu=False, name="node-c")],
                           tmp_path / "known_hosts")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inv = yaml.safe_load(path.read_text())["all"]
    members = {g: sorted(v["hosts"]) for g, v in inv["children"].items()}
    assert members == {"gpu_servers": ["node-a"], "cpu_servers": ["node-a", "node-c"],
                       "edge_devices": ["node-e"]}
    a, e = inv["hosts"]["node-a"], inv["hosts"]["node-e"]
    assert (a["ansible_host"], a["ansible_user"], a["ansible_ssh_private_key_file"]) == \
        ("127.0.0.9", "cc", "/keys/id")
    assert (a["host_kind"], e["host_kind"], e["ansible_user"]) == ("gpu_server", "edge", "root")
    assert a["site"] == "CHI@TACC" and a["lease_end"].startswith("2026-11-23T17:00")
    assert "StrictHostKeyChecking=accept-new" in a["ansible_ssh_common_args"]


# -- credentials -------------------------------------------------------------------------------

APP = {"OS_APPLICATION_CREDENTIAL_ID": "id1", "OS_APPLICATION_CREDENTIAL_SECRET": "s3cret-value"}


def test_credentials_method_is_inferred_and_missing_variables_are_named():
    assert credentials.resolve(APP).auth_type == "v3applicationcredential"
    with pytest.raises(ConfigError, match="missing OS_APPLICATION_CREDENTIAL_SECRET$"):
        credentials.resolve({"OS_APPLICATION_CREDENTIAL_ID": "id1"})
    with pytest.raises(ConfigError, match="missing OS_PASSWORD, OS_PROJECT_NAME or OS_PROJECT_ID"):
        credentials.resolve({"OS_AUTH_TYPE": "password", "OS_USERNAME": "u"})
    with pytest.raises(ConfigError, match="no Chameleon credentials") as info:
        credentials.resolve({})
    assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match="not supported"):
        credentials.resolve({"OS_AUTH_TYPE": "v3samlpassword"})


def test_project_option_completes_a_password_login():
    creds = credentials.resolve({"OS_USERNAME": "u", "OS_PASSWORD": "pa55word!"}, project="CHI-9")
    assert creds.auth_type == "v3password" and creds.settings["project_name"] == "CHI-9"
    assert creds.redact("x pa55word! y") == "x [redacted] y"


def test_openrc_is_read_not_run_and_resolves_its_variables(tmp_path):
    openrc = tmp_path / "openrc.sh"
    openrc.write_text(
        "#!/usr/bin/env bash\n"
        'export OS_AUTH_URL="https://chi.uc.chameleoncloud.org:5000/v3"\n'
        "export OS_USERNAME=jane # the portal login\n"
        'echo "Please enter your password: "\n'
        "read -sr OS_PASSWORD_INPUT\n"
        "export OS_PASSWORD=$OS_PASSWORD_INPUT\n"
        "export OS_PROJECT_NAME='CHI-251234'\n"
        "export OS_TOKEN=$NOT_SET\n")
    values = credentials.read_openrc(openrc, {"OS_PASSWORD_INPUT": "typed-secret"})
    assert values == {"OS_AUTH_URL": "https://chi.uc.chameleoncloud.org:5000/v3", "OS_USERNAME": "jane",
                      "OS_PASSWORD": "typed-secret", "OS_PROJECT_NAME": "CHI-251234"}
    creds = credentials.resolve({"OS_PASSWORD_INPUT": "typed-secret"}, openrc)
    assert creds.auth_type == "v3password" and creds.secrets == ("typed-secret",)
    with pytest.raises(UsageError, match="cannot read openrc"):
        credentials.resolve({}, tmp_path / "nope")
