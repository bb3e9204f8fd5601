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
    "wrong_type": (["benchmark_threads=many"], "benchmark_threads must be a whole number from 1 to"),
    "wrong_choice": (["docker_install_from=snap"],
                     "value of docker_install_from must be one of: docker, distribution"),
    # Knobs of the run itself (playbooks/vars/run_argument_specs.yml), not only the roles'.
    "run_knob_misspelled": (["result_dir=/tmp/elsewhere"],
                            "unknown setting result_dir (did you mean results_dir?)"),
    "run_knob_singular": (["variant=onnx-cpu"], "unknown setting variant (did you mean variants?)"),
    "not_a_boolean": (["bench_fail_on_host_failure=maybe"],
                      "argument 'bench_fail_on_host_failure' is of type str and we were unable to convert to bool"),
    # Bounds from the engine's settings table: the wait's shell arithmetic stays finite.
    "repeats_overflow": (["repeats=100000000000000000000"],
                         "repeats must be a whole number from 1 to 100 (got 100000000000000000000"),
    "threads_beyond_cpus": (["benchmark_threads=999999"],
                            "benchmark_threads must be a whole number from 1 to"),
    "unknown_profile": (["profile=fast"], "profile must be one of full, quick, smoke (got fast"),
    # The time-outs the waits compute with: whole seconds, at most a week.
    "timeout_overflow": (['{"benchmark_timeout_s_by_profile": {"smoke": 1e30, "quick": 1200, "full": 14400}}'],
                         "benchmark_timeout_s_by_profile of localhost must be whole seconds from 1 to 604800 (got 1e+30)"),
}


def _refused(done, expected: str) -> None:
    assert done.returncode != 0, done.stdout[-2000:]
    assert expected in done.stdout, done.stdout[-3000:]
    # The first checks of the plan: no later plan task, no other play ran.
    assert "Plan | check the run's other knobs and the targets" not in done.stdout
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


def _inventory(world, **node1) -> str:
    inventory = world / "chi_test.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge_devices": {"hosts": {"node1": {
        "ansible_host": "127.0.0.9", **node1}}}}}}))
    return str(inventory)


def test_an_unknown_host_kind_stops_the_run_at_its_start(world):
    inventory = _inventory(world, host_kind="banana")
    before = snapshot(world)
    done = bench("-i", inventory, "-e", f"results_dir={world / 'results'}", cwd=world)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "host_kind banana of node1 is not a kind the engine knows" in done.stdout, done.stdout[-3000:]
    assert "(local, cpu_server, gpu_server, edge)" in done.stdout
    assert "Setup |" not in done.stdout
    assert snapshot(world) == before


def test_a_run_knob_set_in_the_inventory_is_refused_not_ignored(world):
    # The plan's vars file outranks an inventory variable: this run_id would never be used.
    inventory = _inventory(world, run_id="mine")
    before = snapshot(world)
    done = bench("-i", inventory, "-e", f"results_dir={world / 'results'}", cwd=world)
    _refused(done, "run_id is a knob of the run, set in the inventory where it is not read")
    assert snapshot(world) == before
