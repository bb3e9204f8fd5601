"""One settings object: bench-run's flags, the worker child's Context and the table Ansible reads
all come from servebench_engine.settings.Settings."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from servebench_engine import cli, environment, variants
from servebench_engine.errors import EXIT_CODES, ExitCode, InputError
from servebench_engine.profiles import PROFILES
from servebench_engine.settings import Settings

from . import extra_settings

SETTINGS_KEYS = {"name", "flag", "knob", "type", "repeatable", "default", "min", "max",
                 "choices", "help"}


@pytest.fixture(scope="module")
def table(repo_root):
    """``python -m servebench_engine.settings``, run as the role runs it, torch never imported."""
    code = ("import runpy, sys; sys.argv = ['settings'];\n"
            "try: runpy.run_module('servebench_engine.settings', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root / "benchmarks", env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stderr.strip() == "False", proc.stderr
    return json.loads(proc.stdout)


def test_the_table_lists_every_setting_with_its_flag_knob_and_bounds(table):
    rows = {row["name"]: row for row in table["settings"]}
    assert list(rows) == [f.name for f in dataclasses.fields(Settings)]
    assert all(set(row) == SETTINGS_KEYS and row["help"] for row in rows.values())
    assert rows["threads"] | {"help": ""} == {
        "name": "threads", "flag": "--threads", "knob": "benchmark_threads", "type": "int",
        "repeatable": False, "default": None, "min": 1, "max": None, "choices": None, "help": ""}
    assert rows["repeats"]["max"] == 100 and rows["repeats"]["knob"] == "repeats"
    assert rows["profile"]["choices"] == sorted(PROFILES) == table["profiles"]
    assert rows["allow_pickle"]["type"] == "bool" and rows["allow_pickle"]["default"] is False
    assert rows["allow_pickle"]["knob"] == "model_allow_pickle"
    assert rows["model"]["repeatable"] and rows["model"]["default"] == []
    assert rows["out"]["knob"] is None and rows["host_label"]["knob"] is None
    assert [(c["code"], c["name"]) for c in table["exit_codes"]] == [
        (code, name) for code, name, _ in EXIT_CODES]
    assert {c["code"]: c["name"] for c in table["exit_codes"]}[7] == "FILE" == ExitCode(7).name


def test_every_flag_of_bench_run_is_a_setting():
    parser = cli.build_parser()
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings} - {"-h"}
    assert flags == {"--" + f.name.replace("_", "-") for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("args, says", [
    (["--threads", "999999"], f"must be at most {environment.usable_cpus()}"),
    (["--repeats", "101"], "must be at most 100"),
    (["--prepare-jobs", "1000"], "must be at most 64"),
])
def test_a_setting_past_its_bound_is_refused_before_anything_runs(bench_run, tmp_path, args,
                                                                    says):
    out = tmp_path / "out"
    r = bench_run(*args, "--profile", "smoke", "--out", out)
    assert r.code == ExitCode.USAGE
    assert r.err.count("\n") == 1 and r.err.startswith(f"error: argument {args[0]}: ")
    assert says in r.err and not out.exists()


def test_bounds_hold_for_settings_made_in_code_too():
    with pytest.raises(InputError, match="--threads 999999 must be at most"):
        Settings(threads=999999)


def test_a_job_gives_the_child_the_same_settings(tmp_path):
    given = Settings(model=(tmp_path / "a.onnx",), threads=1, repeats=2, allow_pickle=True,
                     out=tmp_path)
    job = json.loads(json.dumps(given.job()))
    assert Settings.from_job(job) == given


def test_a_setting_added_in_one_place_reaches_the_context_in_a_worker_child(
        bench_run, shared_int8, tmp_path, monkeypatch):
    """One field (extra_settings.WithProbe.probe_note) becomes a flag of bench-run, crosses to
    the measuring child in its job, and is there in the variant's Context."""
    monkeypatch.setattr(cli, "Settings", extra_settings.WithProbe)
    monkeypatch.setitem(variants.REGISTRY, "probe", f"{extra_settings.__name__}:ProbeReader")
    out = tmp_path / "out"
    r = bench_run("--model", shared_int8, "--variants", "probe", "--profile", "smoke",
                  "--probe-note", "seen in the child", "--out", out)
    assert r.code == 0, r.err
    info = json.loads((out / "probe.json").read_text())["info"]
    assert info["probe_note"] == info["probe_note_of_settings"] == "seen in the child"
    assert info["read_in_pid"] != os.getpid()


def test_allow_pickle_reaches_the_model_and_the_measuring_child(bench_run, tmp_path):
    """C3: --allow-pickle is what lets a whole pickled module in, in bench-run and in the child
    that serves it (torch-eager reads the .pth again there)."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 11)).eval()
    torch.save(net, tmp_path / "whole.pth")
    args = ("--model", tmp_path / "whole.pth", "--variants", "torch-eager", "--profile", "smoke")
    refused = bench_run(*args, "--out", tmp_path / "refused")
    assert refused.code == ExitCode.USAGE and "--allow-pickle" in refused.err
    assert not (tmp_path / "refused").exists()
    r = bench_run(*args, "--allow-pickle", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    record = json.loads((tmp_path / "out" / "torch-eager.json").read_text())
    assert (record["status"], record["model"]["format"]) == ("ok", "pth"), record["reason"]
