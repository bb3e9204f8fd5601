"""servebench.runner without a playbook run: run ids, the inventory scope, artifact folders."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from servebench.errors import ConfigError
from servebench.runner import _free_ident, inventory_scope, new_run_id, run_playbook

from .conftest import LOCAL_INVENTORY, write_inventory


def test_run_id_has_utc_time_scope_and_profile():
    when = datetime(2026, 11, 23, 19, 15, 0, tzinfo=timezone.utc)
    assert new_run_id("quick", "local", when) == "20261123T191500Z-local-quick"


def test_scope_is_chi_only_with_testbed_hosts(tmp_path):
    assert inventory_scope([LOCAL_INVENTORY]) == "local"
    chi = write_inventory(tmp_path / "chi_x.yml", {"cpu_servers": {"n1": {"ansible_host": "127.0.0.9"}}})
    assert inventory_scope([LOCAL_INVENTORY, chi]) == "chi"


def test_a_rerun_of_the_same_run_keeps_the_first_artifacts(tmp_path):
    assert _free_ident(tmp_path) == "runner"
    (tmp_path / "runner").mkdir()
    (tmp_path / "runner-2").mkdir()
    assert _free_ident(tmp_path) == "runner-3"


def test_other_playbooks_must_say_where_artifacts_go(tmp_path):
    with pytest.raises(ConfigError, match="artifact_dir"):
        run_playbook("playbooks/teardown.yml")
    with pytest.raises(ConfigError, match="not found"):
        run_playbook("no-such.yml", artifact_dir=tmp_path)
