"""A node runs one study at a time, and what a run leaves is its own (issue 17): engines get an
allow-listed environment (localhost and over SSH), a run id or a node in use is refused, an
engine whose control side dies is stopped, fetched files land whole or not at all, a stage run
on its own fails when its hosts did, and a run leaves nothing behind outside results_dir.

The nodes are real sshd hosts on loopback (tests/support/sshd.py); every engine is the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from servebench.runner import run_playbook

from tests.support.control_side import (ENGINE_ENV, SECRETS, kill_tree, processes_naming, run_bench,
                                        start_bench, wait_until)

from .conftest import LOCAL_INVENTORY, REPO, RUNNER_ENV, node_vars, write_inventory

pytestmark = pytest.mark.slow

MODELS = ("food11_quantized_aggressive", "food11_quantized_dynamic")
FLOAT_MODELS = ("alpha", "beta")


def env_recording_python(path: Path, dumps: Path) -> Path:
    """A `python` for the engine that writes its environment to `dumps`, then is the real one."""
    dumps.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nenv -0 > {dumps}/engine-$$.env\nexec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path


def recorded_envs(dumps: Path) -> list[dict[str, str]]:
    envs = [dict(item.split("=", 1) for item in p.read_text().split("\0") if "=" in item)
            for p in sorted(dumps.glob("engine-*.env"))]
    assert envs, f"no engine ran with the recording python ({dumps})"
    return envs


def test_engines_get_an_allow_listed_environment_and_leave_nothing_behind(tmp_path, ssh_hosts, ssh_key):
    """OS_* in the controller's environment (a plain ansible-playbook after sourcing an openrc):
    no engine sees them, on localhost or over SSH. Two float models quantised by one variant
    (each makes onnx-int8-dynamic.onnx) keep one served model each; localhost's engine folder and
    every async job's status file are gone once the run is collected."""
    exported = tmp_path / "float.onnx"
    subprocess.run([sys.executable, "-m", "servebench_engine", "--export-only", str(exported)],
                   cwd=REPO / "benchmarks", check=True, capture_output=True, timeout=600)
    paths = []
    for name in FLOAT_MODELS:
        paths.append(str(tmp_path / f"{name}.onnx"))
        Path(paths[-1]).write_bytes(exported.read_bytes())
    node = ssh_hosts("127.0.0.2")
    inventory = write_inventory(tmp_path / "chi_test.yml", {"edge_devices": {"node1": node_vars(
        node, ssh_key, tmp_path / "node1",
        benchmark_native_python=str(env_recording_python(tmp_path / "node-python", tmp_path / "node-env")))}})

    run = run_playbook("bench.yml", inventory=[LOCAL_INVENTORY, inventory],
                       envvars={**RUNNER_ENV, **SECRETS}, extravars={
        "results_dir": str(tmp_path / "results"), "profile": "smoke",
        "variants": "onnx-cpu,onnx-int8-dynamic", "models": paths, "local_benchmark": "true",
        "benchmark_fetch_artifacts": True,
        "benchmark_local_python": str(env_recording_python(tmp_path / "local-python", tmp_path / "local-env")),
    })

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    for where in ("local-env", "node-env"):
        for env in recorded_envs(tmp_path / where):
            assert not set(env) & set(SECRETS), (where, sorted(env))
            assert not set(SECRETS.values()) & set(env.values()), where
            assert set(env) <= ENGINE_ENV, (where, sorted(set(env) - ENGINE_ENV))
            assert "PATH" in env and "HOME" in env

    # Each model's served model under its own path: artifacts/<runtime>/<model>/<file>.
    artifacts = run.run_dir / "localhost" / "artifacts"
    served = sorted(str(p.relative_to(artifacts)) for p in artifacts.rglob("onnx-int8-dynamic.onnx"))
    assert served == [f"local/{name}/onnx-int8-dynamic.onnx" for name in FLOAT_MODELS], served

    # Nothing outside results_dir: localhost's engine folder went once collected, and each
    # engine's background job left no status file in ~/.ansible_async.
    assert not (REPO / ".servebench" / "node" / "runs" / run.run_id).exists()
    jobs = [e["res"]["ansible_job_id"] for e in run.task_results()
            if e["task"].startswith("Benchmark | start bench-run") and "ansible_job_id" in e["res"]]
    assert len(jobs) == 2
    for jid in jobs:
        assert not (Path.home() / ".ansible_async" / jid).exists(), jid


def test_a_run_id_or_node_in_use_is_refused_and_an_orphaned_engine_stops(
        tmp_path, ssh_hosts, ssh_key, shared_data):
    """Run A measures on a loopback node. A second bench.yml of A's run id is refused before it
    touches anything; another study on A's node is refused by the node, saying what runs since
    when; A's engine runs on through both. Then A's control side dies whole (SIGKILL, as a closed
    laptop: nothing of it runs again) and the node stops A's engine within a bound by itself."""
    node = ssh_hosts("127.0.0.2")
    workdir = tmp_path / "node1" / "node"
    inventory = [LOCAL_INVENTORY, write_inventory(tmp_path / "chi_test.yml", {"edge_devices": {
        "node1": node_vars(node, ssh_key, tmp_path / "node1")}})]
    run_id = "hostile-node-orphan"
    quiet_s = 20
    # Far more repeats than the test lets it run: the engine is busy until it is stopped.
    knobs = {"results_dir": str(tmp_path / "results"), "profile": "quick", "repeats": 100,
             "model": str(shared_data / "models" / f"{MODELS[0]}.onnx"), "tflite_model": "",
             "benchmark_control_timeout_s": quiet_s, "run_id": run_id}
    out = str(workdir / "runs" / run_id / "arm")
    lock = workdir / "engine.lock"

    first = start_bench(tmp_path / "first.log", inventory, knobs)
    try:
        wait_until(lambda: processes_naming(out) or first.poll() is not None, 600, "run A's engine started")
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]

        second = run_bench(inventory, knobs, timeout=480)
        assert second.returncode != 0
        assert f"run_id {run_id} is in use: ansible-playbook pid {first.pid} has held it since" in second.stdout, \
            second.stdout[-3000:]
        assert processes_naming(out), "the second run of the same run id stopped A's engine"

        other = run_bench(inventory, {**knobs, "run_id": run_id + "-other"}, tags=["benchmark"], timeout=480)
        assert other.returncode != 0
        assert "node1 is busy: it is running the engine of run hostile-node-orphan (arm) since" in other.stdout, \
            other.stdout[-3000:]
        assert processes_naming(out), "the other study stopped A's engine"
        assert first.poll() is None
    finally:
        kill_tree(first.pid)
        first.wait()

    try:
        wait_until(lambda: not processes_naming(out), quiet_s + 40, "A's engine gone after its control side died")
    except AssertionError as exc:
        left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:300] for pid in processes_naming(out)}
        raise AssertionError(f"{exc}: {left}") from None
    log = (workdir / "runs" / run_id / "arm.log").read_text()
    assert "engine stopped: no word from the control side (ansible-playbook)" in log, log[-2000:]
    assert not lock.exists(), "the node was not given back"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tiny tmpfs as results_dir")
def test_a_fetch_cut_short_by_a_full_disk_leaves_no_half_written_file(tmp_path, ssh_hosts, ssh_key,
                                                                      shared_data):
    """--tags collect into a results_dir on a 96 KiB file system: the node's record does not fit.
    Nothing lands truncated under its final name, the host fails naming the file."""
    node = ssh_hosts("127.0.0.2")
    inventory = [LOCAL_INVENTORY, write_inventory(tmp_path / "chi_test.yml", {"edge_devices": {
        "node1": node_vars(node, ssh_key, tmp_path / "node1")}})]
    run_id = "hostile-node-full-disk"
    out = tmp_path / "node1" / "node" / "runs" / run_id / "arm"
    subprocess.run([sys.executable, "-m", "servebench_engine", "--profile", "smoke", "--variants",
                    "onnx-cpu", "--model", str(shared_data / "models" / f"{MODELS[0]}.onnx"),
                    "--out", str(out), "--host-label", "node1", "--host-kind", "edge"],
                   cwd=REPO / "benchmarks", check=True, capture_output=True, timeout=600)
    # A record far larger than the disk (trailing blanks: still the same JSON).
    record = out / "onnx-cpu.json"
    record.write_text(record.read_text() + " " * 400_000)
    (out.parent / "arm.log").write_text("onnx-cpu: ok\n")
    results = tmp_path / "results"
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(results)], check=True)
    try:
        done = run_bench(inventory, {"results_dir": str(results), "run_id": run_id}, tags=["collect"])
        host = results / run_id / "node1"
        fetched = {p.relative_to(host): p.read_bytes() for p in host.rglob("*") if p.is_file()}
    finally:
        subprocess.run(["umount", str(results)], check=True)

    assert Path("onnx-cpu.json") not in fetched, \
        f"a truncated record under its final name: {len(fetched[Path('onnx-cpu.json')])} bytes"
    assert done.returncode != 0
    assert "could not fetch onnx-cpu.json" in done.stdout, done.stdout[-3000:]
    node_side = {Path("runs/arm/suite.json"): (out / "suite.json").read_bytes(),
                 Path("runs/arm/engine.log"): (out.parent / "arm.log").read_bytes()}
    for name, data in fetched.items():
        assert not str(name).startswith(".fetching"), name
        if name in node_side:
            assert data == node_side[name], f"{name} is not the node's file"


def test_a_stage_run_on_its_own_fails_when_every_host_failed(tmp_path, ssh_hosts, ssh_key, shared_data):
    """--tags setup and --tags benchmark against a node that does not answer: each exits
    non-zero, naming the host (the report stage, which fails a whole run, is not run)."""
    gone = ssh_hosts("127.0.0.4")
    gone.stop()
    inventory = [LOCAL_INVENTORY, write_inventory(tmp_path / "chi_test.yml", {"edge_devices": {
        "gone": node_vars(gone, ssh_key, tmp_path / "gone")}})]
    for stage in ("setup", "benchmark"):
        run = run_playbook("bench.yml", inventory=inventory, tags=[stage], envvars=RUNNER_ENV, extravars={
            "results_dir": str(tmp_path / "results"), "profile": "smoke", "tflite_model": "",
            "model": str(shared_data / "models" / f"{MODELS[0]}.onnx"), "bench_connect_timeout": 5})
        assert run.rc != 0, stage
        verdict = run.task_results("Verdict | fail the stage if its hosts failed")
        assert verdict and verdict[0]["event"] == "runner_on_failed", stage
        assert f"{stage}: 1 of 1 host(s) failed: gone" in verdict[0]["res"]["msg"], verdict[0]["res"]["msg"]


def test_make_bench_gives_ansible_playbook_only_the_allow_list(tmp_path):
    """`make bench` starts ansible-playbook through the Makefile's PLAYBOOK: with OS_* in make's
    environment, a playbook run that way reads none of them (what it sees, every task and engine
    process on localhost could)."""
    probe = tmp_path / "probe.yml"
    seen = tmp_path / "seen.json"
    probe.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.copy": {"dest": str(seen), "content": "{{ {'os_password': lookup('env', 'OS_PASSWORD'), "
                                  "'secret': lookup('env', 'OS_APPLICATION_CREDENTIAL_SECRET'), "
                                  "'home': lookup('env', 'HOME')} | to_json }}", "mode": "0600"}}]}]))
    makefile = tmp_path / "probe.mk"
    makefile.write_text(f"include {REPO / 'Makefile'}\nprobe:\n\t$(RUN) $(PLAYBOOK) -i {LOCAL_INVENTORY} {probe}\n")
    done = subprocess.run(["make", "-s", "-f", str(makefile), "probe"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **SECRETS})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(seen.read_text()) == {"os_password": "", "secret": "", "home": os.environ["HOME"]}
