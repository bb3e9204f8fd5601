"""servebench.runner without a playbook run: run ids, the inventory scope, artifact folders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from datetime import datetime, timezone

import pytest

from servebench.errors import ConfigError
from servebench import runner
from servebench.runner import _free_ident, inventory_scope, new_run_id, plan_rules, run_playbook

from .conftest import LOCAL_INVENTORY, write_inventory


def test_run_id_has_utc_time_scope_and_profile():
    when = datetime(2026, 11, 23, 19, 15, 0, tzinfo=timezone.utc)
    assert new_run_id("quick", "local", when) == "20261123T191500Z-local-quick"


def test_scope_is_chi_only_with_testbed_hosts(tmp_path):
    assert inventory_scope([LOCAL_INVENTORY]) == "local"
    chi = write_inventory(tmp_path / "chi_x.yml", {"cpu_servers": {"n1": {"ansible_host": "127.0.0.9"}}})
    assert inventory_scope([LOCAL_INVENTORY, chi]) == "chi"
    nested = tmp_path / "nested.yml"
    nested.write_text("all:\n  children:\n    edge_devices:\n      children:\n        pis:\n"
                      "          hosts:\n            pi1: {ansible_host: 127.0.0.9}\n")
    assert inventory_scope([LOCAL_INVENTORY, nested]) == "chi"


def test_scope_leaves_this_process_without_ansible_patches():
    # Ansible's imports replace sys.intern, which torch.compile cannot trace afterwards.
    code = ("import sys; from pathlib import Path; from servebench.runner import inventory_scope;"
            f"inventory_scope([Path({str(LOCAL_INVENTORY)!r})]);"
            "print(sorted(m for m in sys.modules if m == 'ansible' or m.startswith('ansible.')),"
            " type(sys.intern).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["[]", "builtin_function_or_method"], done.stderr


def test_an_unreadable_inventory_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("all: [unclosed\n")
    with pytest.raises(ConfigError, match="inventory"):
        inventory_scope([bad])


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


def test_the_run_id_rule_and_the_testbed_groups_are_the_plans():
    # playbooks/plan.yml is their one place: the runner holds no pattern or group name of its own.
    source = Path(runner.__file__).read_text()
    assert "A-Za-z0-9" not in source and "gpu_servers" not in source
    rule = plan_rules()["bench_safe_name"]
    assert re.match(rule, "20261123T191500Z-local-quick")
    for bad in ("ok-run\n", "../victim", "a..b", "/tmp/x", ""):
        assert not re.match(rule, bad), bad
    assert "edge_devices" in plan_rules()["bench_testbed_groups"]


def test_a_run_id_with_a_trailing_newline_is_refused_before_any_artifact(tmp_path):
    with pytest.raises(ConfigError, match="is not a safe folder name"):
        run_playbook("bench.yml", inventory=[LOCAL_INVENTORY],
                     extravars={"results_dir": str(tmp_path / "results"), "run_id": "ok-run\n"})
    assert list(tmp_path.iterdir()) == []
