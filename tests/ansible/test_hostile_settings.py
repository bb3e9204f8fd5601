"""A role setting the roles do not declare, or of the wrong type, stops the run at its start
(playbooks/plan.yml, against roles/*/meta/argument_specs.yml): one line naming it and the
declared name it most likely meant, before any host is touched or anything is written."""

from __future__ import annotations

import pytest
import yaml

from .test_hostile_plan import bench, snapshot, world  # noqa: F401 - world is a fixture

pytestmark = pytest.mark.slow

# (knobs, what the one line must say). Listed in docs/BAD_INPUTS.md.
CASES = {
    "misspelled": (["food11_dataset_dri=/tmp/x"],
                   "unknown setting food11_dataset_dri (did you mean food11_dataset_dir?)"),
    "renamed": (["food11_enabled=true"],
                "unknown setting food11_enabled (did you mean food11_dataset_enabled?)"),
    "wrong_type": (["benchmark_threads=many"],
                   "argument 'benchmark_threads' is of type str and we were unable to convert to int"),
    "wrong_choice": (["docker_install_from=snap"],
                     "value of docker_install_from must be one of: docker, distribution"),
}


def _refused(done, expected: str) -> None:
    assert done.returncode != 0, done.stdout[-2000:]
    assert expected in done.stdout, done.stdout[-3000:]
    # The first checks of the plan: no later plan task, no other play ran.
    assert "Plan | check the profile and the targets" not in done.stdout
    assert "Setup |" not in done.stdout


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_an_unknown_or_mistyped_setting_stops_the_run_at_its_start(world, case):
    knobs, expected = CASES[case]
    before = snapshot(world)
    done = bench(*[a for knob in knobs for a in ("-e", knob)],
                 "-e", f"results_dir={world / 'results'}", cwd=world)
    _refused(done, expected)
    assert snapshot(world) == before


def test_a_misspelled_setting_of_one_inventory_host_is_named_too(world):
    # A testbed host that would never answer: the plan must stop before anything connects.
    inventory = world / "chi_test.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge_devices": {"hosts": {"node1": {
        "ansible_host": "127.0.0.9", "benchmark_remote_dri": "/tmp/servebench"}}}}}}))
    before = snapshot(world)
    done = bench("-i", str(inventory), "-e", f"results_dir={world / 'results'}", cwd=world)
    _refused(done, "unknown setting benchmark_remote_dri (did you mean benchmark_remote_dir?)")
    assert snapshot(world) == before


def test_an_unknown_variant_in_one_hosts_runs_stops_the_run_at_its_start(world):
    inventory = world / "chi_test.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge_devices": {"hosts": {"node1": {
        "ansible_host": "127.0.0.9",
        "benchmark_runs": [{"runtime": "arm", "variants": ["cpu"], "without": ["onnx-cpx"]}]}}}}}}))
    before = snapshot(world)
    done = bench("-i", str(inventory), "-e", f"results_dir={world / 'results'}", cwd=world)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "benchmark_runs of node1: unknown variant id(s) onnx-cpx" in done.stdout, done.stdout[-3000:]
    assert "Setup |" not in done.stdout
    assert snapshot(world) == before
