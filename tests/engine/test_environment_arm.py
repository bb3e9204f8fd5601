"""The environment record on an Arm board: the CPU named from lscpu (a Pi's /proc/cpuinfo has no
model name), the board from its device tree, a Pi's throttling and temperature from vcgencmd
before and after each variant, and whether the process ran under an emulator. Fake lscpu and
vcgencmd scripts on PATH stand in for the Pi's own tools."""

from __future__ import annotations

import os
import stat

import pytest

from servebench_engine import environment, machine_state, variant_run


def _tool(folder, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def pi_tools(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "lscpu", 'echo "Architecture:  aarch64"\necho "Model name:    Cortex-A76"\n')
    calls = tmp_path / "vcgencmd.calls"
    _tool(bin_dir, "vcgencmd", f'echo "$1" >> {calls}\n'
          'case "$1" in get_throttled) echo "throttled=0x50000";; '
          "measure_temp) echo \"temp=61.3'C\";; *) exit 1;; esac\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_arm_cpu_is_named_by_lscpu(pi_tools, monkeypatch):
    monkeypatch.setattr(environment.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(environment, "_cpuinfo", lambda: (None, ["fp", "asimd"]))
    assert environment.cpu_model() == ("Cortex-A76", ["fp", "asimd"])


def test_x86_cpu_keeps_cpuinfo_name(pi_tools, monkeypatch):
    monkeypatch.setattr(environment.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(environment, "_cpuinfo", lambda: ("AMD EPYC 7763", ["avx2"]))
    assert environment.cpu_model()[0] == "AMD EPYC 7763"


def test_vcgencmd_throttle_and_temperature(pi_tools):
    assert machine_state.board_health() == {"throttled": "0x50000", "temperature_c": 61.3}


def test_no_vcgencmd_no_health(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert machine_state.board_health() is None


def test_each_variant_records_health_before_and_after(pi_tools, monkeypatch):
    def skipped(*args, **kwargs):
        raise variant_run.VariantSkipped("measured elsewhere")

    monkeypatch.setattr(variant_run, "measure_variant", skipped)
    run = {"host": "pi", "host_kind": "edge", "profile": "smoke", "model": {}, "data": {},
           "environment": {}, "batch_size": 1}
    record = variant_run.run_variant("onnx-cpu", None, run, lambda msg: None)
    health = {"throttled": "0x50000", "temperature_c": 61.3}
    assert record["info"]["board_health"] == {"before": health, "after": health}
    assert pi_tools.read_text().split() == ["get_throttled", "measure_temp"] * 2


def test_emulated_knob_and_native_guess(monkeypatch):
    monkeypatch.setenv("SERVEBENCH_EMULATED", "1")
    assert environment.emulated() is True
    monkeypatch.setenv("SERVEBENCH_EMULATED", "0")
    assert environment.emulated() is False
    monkeypatch.delenv("SERVEBENCH_EMULATED")
    # This test process is native: neither our parent nor PID 1 is qemu.
    assert environment.emulated() is False
    record = environment.collect(None)
    assert record["emulated"] is False and "board" in record
