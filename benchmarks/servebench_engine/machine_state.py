"""What of the machine may move while a variant runs, read from /sys and /proc (and a Pi's
``vcgencmd``): the CPU frequency and its cap, the governor, the temperature, the throttle flags.

:func:`stability` is read at the start and the end of each variant's process and
:func:`stability_change` says whether it moved (``info.stability`` in the record); the readers
take the filesystem root, so tests hand them a fake tree. environment.py records the same
readings once per suite.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path("/")
# A current frequency that moved by more than this between before and after a variant marks the
# record (``info.stability.changed``); so does any move of the frequency cap or throttle flags.
FREQ_TOLERANCE = 0.10
# Sensors reporting outside this range (°C) are unplugged inputs, not temperatures.
PLAUSIBLE_C = (-30.0, 150.0)


def board_health() -> dict | None:
    """A Raspberry Pi's throttle flags and SoC temperature (``vcgencmd``), or None where there is
    no vcgencmd. Throttling (bit 2 now, bit 18 since boot) makes a latency figure the heat's, not
    the model's: recorded before and after each variant."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    health: dict = {"throttled": None, "temperature_c": None}
    for arg, key in (("get_throttled", "throttled"), ("measure_temp", "temperature_c")):
        try:
            out = subprocess.run([exe, arg], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        value = out.strip().partition("=")[2]
        if key == "throttled" and value:
            health[key] = value
        elif value:
            try:
                health[key] = float(value.split("'")[0])
            except ValueError:
                pass
    return health


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def read_number(path: Path) -> float | None:
    text = read_text(path)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _cpufreq_dirs(root: Path) -> list[Path]:
    cpus = sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*"))
    return [c / "cpufreq" for c in cpus if (c / "cpufreq").is_dir()]


def cpu_governor(root: Path = ROOT) -> str | None:
    """The cpufreq governor (``performance``, ``schedutil``...); several joined by commas when
    the CPUs differ; None where there is no cpufreq (most VMs and containers)."""
    found = {read_text(d / "scaling_governor") for d in _cpufreq_dirs(root)} - {None, ""}
    return ",".join(sorted(found)) or None  # type: ignore[arg-type]


def cpu_freq_mhz(root: Path = ROOT) -> dict | None:
    """``current`` (mean over the CPUs now), ``max`` (the hardware's) and ``policy_max`` (the
    cap now: what thermal throttling or a power policy lowers), in MHz; a VM without cpufreq
    gives /proc/cpuinfo's "cpu MHz" as current, which is often the nominal clock."""
    dirs = _cpufreq_dirs(root)
    current = [v for d in dirs if (v := read_number(d / "scaling_cur_freq")) is not None]
    hw_max = [v for d in dirs if (v := read_number(d / "cpuinfo_max_freq")) is not None]
    cap = [v for d in dirs if (v := read_number(d / "scaling_max_freq")) is not None]
    if current:
        return {"current": round(sum(current) / len(current) / 1000, 1),
                "max": max(hw_max) / 1000 if hw_max else None,
                "policy_max": max(cap) / 1000 if cap else None, "source": "cpufreq"}
    mhz = []
    for line in (read_text(root / "proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "cpu mhz":
            try:
                mhz.append(float(value))
            except ValueError:
                continue
    if not mhz:
        return None
    return {"current": round(sum(mhz) / len(mhz), 1), "max": None, "policy_max": None,
            "source": "cpuinfo"}


def temperature_c(root: Path = ROOT) -> float | None:
    """The hottest readable sensor (thermal zones, then hwmon), °C; None where none is
    readable (most VMs and containers)."""
    files = [*(root / "sys/class/thermal").glob("thermal_zone*/temp"),
             *(root / "sys/class/hwmon").glob("hwmon*/temp*_input")]
    values = [v / 1000 for f in files if (v := read_number(f)) is not None]
    plausible = [v for v in values if PLAUSIBLE_C[0] < v < PLAUSIBLE_C[1]]
    return max(plausible) if plausible else None


def stability(health: dict | None, root: Path = ROOT) -> dict:
    """What may move while a variant runs: the frequency now and its cap, a Pi's throttle
    flags (from ``health``, board_health's reading: vcgencmd is not asked twice), the
    temperature."""
    freq = cpu_freq_mhz(root) or {}
    return {"freq_mhz": freq.get("current"), "policy_max_mhz": freq.get("policy_max"),
            "throttled": (health or {}).get("throttled"),
            "temperature_c": (health or {}).get("temperature_c") or temperature_c(root)}


def stability_change(before: dict, after: dict) -> dict:
    """``changed``: True when the throttle flags or the frequency cap moved, or the current
    frequency by more than FREQ_TOLERANCE; None when nothing could be compared; ``why`` says
    what moved."""
    why, compared = [], False
    for key in ("throttled", "policy_max_mhz"):
        if before[key] is not None and after[key] is not None:
            compared = True
            if before[key] != after[key]:
                why.append(f"{key} {before[key]} -> {after[key]}")
    f0, f1 = before["freq_mhz"], after["freq_mhz"]
    if f0 and f1:
        compared = True
        if abs(f1 - f0) / f0 > FREQ_TOLERANCE:
            why.append(f"freq_mhz {f0} -> {f1}")
    return {"before": before, "after": after, "changed": bool(why) if compared else None,
            "why": why}
