"""Slow preparations (quantising, converting) run before anything is timed, several at once in
processes of their own; each measuring process then serves what they made. A prepare that
fails or whose process dies is its variant's record, and nothing of it is timed; Ctrl-C or
SIGTERM during them stops every child and helper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from servebench_engine import suite, variants
from tests.support.helper_envs import helper_python

from .test_hostile_engine import REPO, one_line_error, workers_of

HERE = "tests.engine.repeat_variants"


@pytest.fixture
def slow(monkeypatch):
    for vid, cls in (("slow-a", "SlowA"), ("slow-b", "SlowB"), ("pid-a", "PidA"),
                     ("fails-prep", "FailsToPrepare"), ("killed-prep", "KilledInPrepare")):
        monkeypatch.setitem(variants.REGISTRY, vid, f"{HERE}:{cls}")


def notes(out: Path, model: Path) -> list[list[str]]:
    path = out / "artifacts" / model.stem / "notes.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("lanes", [2, 1])
def test_slow_prepares_run_ahead_in_their_own_processes_then_are_reused(
        bench_run, shared_int8, tmp_path, slow, lanes):
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "slow-a,pid-a,slow-b", "--profile",
                  "smoke", "--repeats", "2", "--prepare-jobs", lanes, "--out", out)
    assert r.code == 0, r.err
    assert f"preparing 2 variant(s) before timing anything, {lanes} at a time" in r.out
    noted = notes(out, shared_int8)
    made = {n[1]: (int(n[2]), float(n[3]), float(n[4])) for n in noted if n[0] == "prepare"}
    loads = [(n[1], int(n[2]), float(n[3])) for n in noted if n[0] == "load"]
    assert sorted(made) == ["SlowA", "SlowB"]            # made once each: the repeats reused it
    assert [name for name, _, _ in loads] == ["SlowA", "SlowB", "SlowA", "SlowB"]
    # Nothing was loaded (let alone timed) before every prepare had finished.
    assert min(t for _, _, t in loads) >= max(end for _, _, end in made.values())
    prep_pids = {pid for pid, _, _ in made.values()}
    assert len(prep_pids) == 2 and os.getpid() not in prep_pids
    assert prep_pids.isdisjoint(pid for _, pid, _ in loads)
    (_, a0, a1), (_, b0, b1) = made["SlowA"], made["SlowB"]
    overlapped = a0 < b1 and b0 < a1
    assert overlapped is (lanes == 2)
    for vid in ("slow-a", "slow-b"):
        rec = json.loads((out / f"{vid}.json").read_text())
        assert rec["status"] == "ok" and rec["repeats"]["count"] == 2
        ahead = rec["info"]["prepared_ahead"]
        assert ahead["lanes"] == lanes
        assert rec["info"]["prepare_s"] >= 1.0 and rec["info"]["prepare_reused"]
        assert ahead["peak_rss_mb"]["process"] > 0
    plain = json.loads((out / "pid-a.json").read_text())
    assert "prepared_ahead" not in plain["info"] and plain["status"] == "ok"


def test_a_failed_or_killed_prepare_is_the_record_and_nothing_of_it_is_timed(
        bench_run, shared_int8, tmp_path, slow):
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "fails-prep,killed-prep,slow-a",
                  "--profile", "smoke", "--repeats", "2", "--out", out)
    assert r.code == 0, r.err
    failed = json.loads((out / "fails-prep.json").read_text())
    assert failed["status"] == "error" and "the quantiser gave up" in failed["reason"]
    killed = json.loads((out / "killed-prep.json").read_text())
    assert killed["status"] == "error" and "SIGKILL" in killed["reason"]
    assert "[prepare] fails-prep: error: RuntimeError: the quantiser gave up" in r.out
    assert "[prepare] killed-prep: error: WorkerDied:" in r.out
    for vid in ("fails-prep", "killed-prep"):
        assert f"] {vid}: loading" not in r.out and f"] {vid}: preparing" not in r.out
    assert [n[1] for n in notes(out, shared_int8) if n[0] == "load"] == ["SlowA", "SlowA"]
    summary = json.loads((out / "suite.json").read_text())
    assert summary["status"] == "complete"
    assert {k: v["status"] for k, v in summary["results"].items()} == {
        "fails-prep": "error", "killed-prep": "error", "slow-a": "ok"}


def _meminfo(root: Path, available_kib: int) -> None:
    (root / "proc").mkdir(parents=True)
    (root / "proc/meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available_kib} kB\n")


def test_lanes_are_the_jobs_cpus_and_memory_allow(tmp_path):
    roomy, tight = tmp_path / "roomy", tmp_path / "tight"
    _meminfo(roomy, 64 << 20)
    _meminfo(tight, 3 << 20)                                 # 3 GiB free: one 2 GiB prepare
    cpus = len(os.sched_getaffinity(0))
    assert suite.prepare_lanes(None, 4, roomy) == min(4, cpus)
    assert suite.prepare_lanes(None, 1, roomy) == 1
    assert suite.prepare_lanes(None, 4, tight) == 1
    assert suite.prepare_lanes(3, 4, tight) == 3              # --prepare-jobs decides
    assert suite.prepare_lanes(8, 2, tight) == 2              # never more than the jobs


def test_a_cgroup_quota_caps_the_usable_cpus(tmp_path):
    from servebench_engine import environment

    root = tmp_path / "root"
    cgroup = root / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.controllers").write_text("cpu\n")
    (cgroup / "cpu.max").write_text("150000 100000\n")       # 1.5 CPUs
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text("0::/\n")
    assert environment.usable_cpus(root) == 1
    (cgroup / "cpu.max").write_text("max 100000\n")
    assert environment.usable_cpus(root) == len(os.sched_getaffinity(0))


def test_sigterm_while_preparing_stops_the_children_and_their_helpers(tmp_path):
    """A real slow prepare: the TFLite conversion in the converter's environment."""
    converter = helper_python(".venv-litert", "import importlib.util, litert_torch; "
                              "assert importlib.util.find_spec('onnx2torch')")
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "FOOD11_DATA_DIR"}
    env.update(TMPDIR=str(scratch), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "servebench_engine", "--profile", "smoke", "--out", str(out),
         "--variants", "tflite,onnx-cpu", "--tflite-converter-python", converter],
        cwd=REPO / "benchmarks", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    converting = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "[prepare] tflite: converting" in line:
                converting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert converting.wait(180), "".join(lines)
    time.sleep(1.0)  # the converter is busy now
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, "".join(lines)
    reader.join(timeout=10)
    assert "terminated" in one_line_error(proc.stderr.read())
    summary = json.loads((out / "suite.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["results"] == {"tflite": None, "onnx-cpu": None}
    assert workers_of(scratch) == [], "a prepare-ahead child outlived the engine"
    assert converters_writing_to(out) == [], "the TFLite converter outlived the engine"
    assert not list((out / "artifacts").rglob("*.manifest.json")), "a half-made artifact kept"


def converters_writing_to(out: Path) -> list[int]:
    alive = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"convert_tflite.py" in cmdline and str(out).encode() in cmdline:
            alive.append(int(proc.name))
    return alive


def test_a_variant_whose_class_cannot_be_loaded_is_its_error_record_not_the_suites(
        bench_run, shared_int8, tmp_path, slow, monkeypatch):
    monkeypatch.setitem(variants.REGISTRY, "typo", f"{HERE}:NoSuchClass")
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "typo,slow-a", "--profile", "smoke",
                  "--out", out)
    assert r.code == 0, r.err
    typo = json.loads((out / "typo.json").read_text())
    assert typo["status"] == "error" and "NoSuchClass" in typo["reason"]
    assert json.loads((out / "slow-a.json").read_text())["status"] == "ok"
