"""Bad knobs are refused by the plan (issue 10, defects 1, 4 and 5): one line naming the knob,
before any host is touched, and nothing written or moved: not outside results_dir (a canary
beside it survives), not results/latest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible-tmp")}
    return subprocess.run([str(PLAYBOOK), str(REPO / "bench.yml"), "-i",
                           str(REPO / "inventory" / "local.yml"), "-e", "profile=smoke", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def world(tmp_path):
    """results/ with a previous run that latest points at, and a victim folder beside it."""
    results = tmp_path / "results"
    (results / "old-run").mkdir(parents=True)
    (results / "latest").symlink_to("old-run")
    canary = tmp_path / "victim" / "local" / "canary.txt"
    canary.parent.mkdir(parents=True)
    canary.write_text("do not touch")
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.read_text()
                                       if p.is_file() else "dir")
            for p in sorted(root.rglob("*")) if ".ansible-tmp" not in p.parts}


# (knobs, what the one line must say). Listed in docs/BAD_INPUTS.md.
CASES = {
    "run_id_climbs_out": (["run_id=../victim", "variants=onnx-cpu"], "run_id \"../victim\" is not a safe folder name"),
    "run_id_absolute": (["run_id=/tmp/x"], "run_id \"/tmp/x\" is not a safe folder name"),
    "run_id_dotdot": (["run_id=.."], "is not a safe folder name"),
    "targets_file_missing": (["targets_file=/nonexistent/targets.yml"],
                             "targets_file /nonexistent/targets.yml does not exist"),
    "variant_misspelled": (["variants=onnx-cpu,onnx-cpx"], "variants: unknown id(s) onnx-cpx"),
    "results_dir_proc": (["results_dir=/proc"], "results_dir /proc is a system folder"),
    "model_missing": (["model=/nonexistent/model.onnx"], "model /nonexistent/model.onnx does not exist"),
    "tflite_model_folder": (["tflite_model=/tmp"], "tflite_model /tmp is not a file"),
    "tflite_int8_model_missing": (["tflite_int8_model=/nonexistent/m.int8.tflite"],
                                  "tflite_int8_model /nonexistent/m.int8.tflite does not exist"),
    # `$` matched before a trailing newline: the id passed, a folder name with a newline.
    "run_id_newline": (['{"run_id": "ok-run\\n"}'], "run_id \"ok-run\\n\" is not a safe folder name"),
    "connect_timeout_negative": (["bench_connect_timeout=-5"],
                                 "Nothing to run: bench_connect_timeout must be 1 to 3600 seconds (got -5)"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_knob_fails_the_plan_and_moves_nothing(world, case):
    knobs, expected = CASES[case]
    args = [a for knob in knobs for a in ("-e", knob)]
    if not any(k.startswith("results_dir=") for k in knobs):
        args += ["-e", f"results_dir={world / 'results'}"]
    before = snapshot(world)
    done = bench(*args, cwd=world)
    assert done.returncode != 0, done.stdout[-2000:]
    assert expected in done.stdout, done.stdout[-3000:]
    assert "Plan |" in done.stdout and "Setup |" not in done.stdout
    assert snapshot(world) == before


def test_unwritable_results_dir_fails_the_plan(world):
    blocker = world / "a-file"
    blocker.write_text("not a folder")
    done = bench("-e", f"results_dir={blocker}", cwd=world)
    assert done.returncode != 0
    assert f"results_dir {blocker} is not a writable folder" in done.stdout, done.stdout[-3000:]
    assert "Setup |" not in done.stdout


def test_a_run_that_collected_nothing_leaves_latest_alone(world):
    done = bench("--tags", "collect", "-e", "run_id=empty-run",
                 "-e", f"results_dir={world / 'results'}", "-e", "bench_fail_on_host_failure=false",
                 cwd=world)
    assert done.returncode == 0, done.stdout[-3000:]
    assert os.readlink(world / "results" / "latest") == "old-run"


def test_a_relative_model_path_is_read_from_the_working_folder(world):
    # The plan's stat runs as a module, elsewhere: a relative path was "does not exist".
    (world / "models").mkdir()
    (world / "models" / "mine.onnx").write_bytes(b"not checked by the plan")
    done = bench("--tags", "plan-only", "-e", "model=models/mine.onnx",
                 "-e", f"results_dir={world / 'results'}", cwd=world)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "does not exist" not in done.stdout
    assert f"item=model={world / 'models' / 'mine.onnx'}" in done.stdout, done.stdout[-3000:]


def test_a_malformed_targets_file_fails_the_plan_before_any_host(world):
    # The plan reads the targets' knee bounds (the engine's --load-bound-ms), so a bad file is
    # refused there, with the report's one line, not after an hour of measuring.
    bad = world / "targets.yml"
    bad.write_text("targets:\n  mine:\n    judged_on: [cpu_server]\n    criteria:\n"
                   "      knee_rps_at_least: {p99_ms: -3, rps: 10}\n")
    before = snapshot(world)
    done = bench("-e", f"targets_file={bad}", "-e", f"results_dir={world / 'results'}", cwd=world)
    assert done.returncode != 0
    assert "targets.mine.criteria.knee_rps_at_least.p99_ms" in done.stdout, done.stdout[-3000:]
    assert "Traceback" not in done.stdout and "Setup |" not in done.stdout
    assert snapshot(world) == before
