"""A run that cannot finish before a testbed host's lease ends is refused in the plan (issue 21
item 3): both times in the one line, how to extend or override, nothing written to results_dir
and results/latest unmoved. The host is a loopback address nobody answers on: the plan must
refuse before connecting. With -e bench_ignore_lease=true the run goes past the check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from tests.ansible.test_hostile_plan import bench, snapshot

pytestmark = pytest.mark.slow

# Every stage after the plan skipped: the plan (and the run-id locks, tagged always) alone runs.
AFTER_PLAN = ["--skip-tags", "setup,prepare,benchmark,collect,report"]


@pytest.fixture
def leased(tmp_path):
    """A gpu_server whose lease ends in 10 minutes, as chi-up writes it; results/ with a run."""
    end = (datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat(timespec="minutes")
    node = {"ansible_host": "127.0.0.93", "ansible_port": 2, "host_kind": "gpu_server",
            "site": "CHI@TACC", "node_type": "compute_liqid", "lease_end": end,
            "servebench_deployment": "sb1"}
    inventory = tmp_path / "chi_sb1.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"gpu-node": node}, "children": {
        "gpu_servers": {"hosts": {"gpu-node": None}}, "cpu_servers": {"hosts": {"gpu-node": None}}}}}))
    results = tmp_path / "results"
    (results / "old-run").mkdir(parents=True)
    (results / "latest").symlink_to("old-run")
    return tmp_path, inventory


def test_full_profile_on_a_short_lease_is_refused_in_the_plan(leased):
    world, inventory = leased
    before = snapshot(world)
    done = bench("-i", str(inventory), "-e", "profile=full", "-e", f"results_dir={world / 'results'}",
                 *AFTER_PLAN, cwd=world)
    assert done.returncode != 0, done.stdout[-3000:]
    line = next((l for l in done.stdout.splitlines() if "Task failed" in l and "gpu-node: the run needs" in l), "")
    assert "gpu-node: the run needs about " in line, done.stdout[-3000:]
    assert "min left" in line and "UTC" in line and "30 min margin" in line
    assert "the engine time-out alone" in line and "exceeds the lease" in line
    assert "chi-extend --name sb1 --by" in line and "-e bench_ignore_lease=true" in line
    assert "Lock |" not in done.stdout and "Setup |" not in done.stdout
    assert snapshot(world) == before


def test_override_goes_past_the_lease_check(leased):
    world, inventory = leased
    done = bench("-i", str(inventory), "-e", "profile=full", "-e", f"results_dir={world / 'results'}",
                 "-e", "bench_ignore_lease=true", *AFTER_PLAN, cwd=world)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "does NOT fit" in done.stdout and "bench_ignore_lease: running anyway" in done.stdout
    assert "TASK [Plan | show the plan]" in done.stdout
