"""What explains a number besides the hardware (issue 12): governor, frequency, kernel, cgroup
CPU limits (v1 and v2), temperature, read from fake /sys and /proc trees, then once from this
machine; and the per-variant stability mark."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from servebench_engine import environment as env
from servebench_engine import machine_state as state


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def cpufreq(cpu: int, cur: int, governor: str = "performance", cap: int = 3_000_000) -> dict:
    base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
    return {f"{base}/scaling_governor": governor, f"{base}/scaling_cur_freq": str(cur),
            f"{base}/cpuinfo_max_freq": "3500000", f"{base}/scaling_max_freq": str(cap)}


def test_governor_and_frequency_from_cpufreq(tmp_path):
    root = tree(tmp_path, {**cpufreq(0, 2_000_000), **cpufreq(1, 3_000_000),
                           "proc/sys/kernel/osrelease": "6.1.0-rpi7-rpi-2712"})
    assert state.cpu_governor(root) == "performance"
    assert state.cpu_freq_mhz(root) == {"current": 2500.0, "max": 3500.0, "policy_max": 3000.0,
                                      "source": "cpufreq"}
    assert env.kernel(root) == "6.1.0-rpi7-rpi-2712"
    tree(root, cpufreq(1, 3_000_000, governor="powersave"))
    assert state.cpu_governor(root) == "performance,powersave"


def test_a_vm_without_cpufreq_gives_cpuinfo_mhz_and_no_governor(tmp_path):
    root = tree(tmp_path, {"proc/cpuinfo": "processor\t: 0\ncpu MHz\t\t: 2596.138\n"
                                           "processor\t: 1\ncpu MHz\t\t: 2596.138"})
    assert state.cpu_governor(root) is None
    assert state.cpu_freq_mhz(root) == {"current": 2596.1, "max": None, "policy_max": None,
                                      "source": "cpuinfo"}
    assert state.cpu_freq_mhz(tmp_path / "nothing") is None


def test_cgroup_v2_takes_the_tightest_limit_on_the_way_up(tmp_path):
    root = tree(tmp_path, {
        "proc/self/cgroup": "0::/system.slice/bench.service",
        "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids",
        "sys/fs/cgroup/system.slice/cpu.max": "400000 100000",
        "sys/fs/cgroup/system.slice/bench.service/cpu.max": "max 100000",
        "sys/fs/cgroup/system.slice/bench.service/cpuset.cpus.effective": "0-3",
    })
    assert env.cgroup_cpu(root) == {"version": 2, "quota_us": 400000, "period_us": 100000,
                                    "cpus": 4.0, "cpuset": "0-3"}


def test_cgroup_v2_in_a_container_reads_its_own_root(tmp_path):
    # docker run --cpus 1.5 with a cgroup namespace: /proc/self/cgroup says "/", the mount is
    # the container's cgroup.
    root = tree(tmp_path, {"proc/self/cgroup": "0::/",
                           "sys/fs/cgroup/cgroup.controllers": "cpu",
                           "sys/fs/cgroup/cpu.max": "150000 100000"})
    assert env.cgroup_cpu(root)["cpus"] == 1.5


def test_cgroup_v1_quota_unlimited_and_limited(tmp_path):
    root = tree(tmp_path, {
        "proc/self/cgroup": "4:memory:/x\n3:cpuset:/\n2:cpu,cpuacct:/docker/abc\n0::/",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        "sys/fs/cgroup/cpuset/cpuset.effective_cpus": "0-1",
    })
    assert env.cgroup_cpu(root) == {"version": 1, "quota_us": None, "period_us": None,
                                    "cpus": None, "cpuset": "0-1"}
    tree(root, {"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"})
    assert env.cgroup_cpu(root)["cpus"] == 0.5
    assert env.cgroup_cpu(tmp_path / "nothing") is None


def test_temperature_is_the_hottest_plausible_sensor(tmp_path):
    root = tree(tmp_path, {"sys/class/thermal/thermal_zone0/temp": "61300",
                           "sys/class/thermal/thermal_zone1/temp": "-273000",  # unplugged
                           "sys/class/hwmon/hwmon0/temp1_input": "64250"})
    assert state.temperature_c(root) == 64.25
    assert state.temperature_c(tmp_path / "nothing") is None


def test_stability_flags_a_moved_cap_or_throttle_and_a_big_frequency_move(tmp_path):
    root = tree(tmp_path, cpufreq(0, 2_400_000))
    calm = state.stability(None, root)
    assert calm == {"freq_mhz": 2400.0, "policy_max_mhz": 3000.0, "throttled": None,
                    "temperature_c": None}
    same = state.stability_change(calm, state.stability(None, root))
    assert same["changed"] is False and same["why"] == []
    tree(root, cpufreq(0, 2_300_000))                 # 4 %: within the tolerance
    assert state.stability_change(calm, state.stability(None, root))["changed"] is False
    tree(root, cpufreq(0, 1_500_000, cap=1_500_000))  # thermal cap came down
    moved = state.stability_change(calm, state.stability(None, root))
    assert moved["changed"] is True and len(moved["why"]) == 2
    # A Pi: the throttle flags come from board_health's reading.
    pi = state.stability_change(
        state.stability({"throttled": "0x0", "temperature_c": 60.0}, root),
        state.stability({"throttled": "0x20002", "temperature_c": 82.0}, root))
    assert pi["changed"] is True and "throttled 0x0 -> 0x20002" in pi["why"]
    assert pi["after"]["temperature_c"] == 82.0
    nothing = state.stability(None, tmp_path / "nothing")
    assert state.stability_change(nothing, nothing)["changed"] is None


def test_this_machine_for_real():
    record = env.collect(None)
    assert record["kernel"] == platform.release()
    for key in ("cpu_governor", "cpu_freq_mhz", "cgroup_cpu", "temperature_c", "runtime_image"):
        assert key in record
    cg = record["cgroup_cpu"]
    if Path("/sys/fs/cgroup").is_dir():
        assert cg is not None and cg["version"] in (1, 2)
        if cg["cpus"] is not None:
            assert 0 < cg["cpus"] <= os.cpu_count()
    freq = record["cpu_freq_mhz"]
    if freq is not None:
        assert freq["current"] > 100
    print({k: record[k] for k in ("cpu_governor", "cpu_freq_mhz", "cgroup_cpu", "temperature_c")})


@pytest.mark.parametrize("value", ["servebench-runtime-cpu:v1"])
def test_runtime_image_names_the_image_and_its_digest(monkeypatch, value):
    monkeypatch.setenv("SERVEBENCH_IMAGE", value)
    monkeypatch.setenv("SERVEBENCH_IMAGE_ID", "sha256:" + "ab" * 32)
    assert env.collect(None)["runtime_image"] == {"name": value, "id": "sha256:" + "ab" * 32}
