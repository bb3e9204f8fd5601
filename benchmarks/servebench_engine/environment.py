"""What machine and software produced a record: enough to tell two runs apart.

Reads files and metadata only: library versions come from the installed distributions
(``importlib.metadata``), so recording torch's version does not cost a torch import. What
explains a number besides the hardware (issue 12): the CPU governor and frequency, the kernel,
the cgroup's CPU limit, the temperature; the /sys and /proc readers take the filesystem root so
tests hand them a fake tree. What can move during a variant (frequency, its cap, a Pi's
throttle flags) is machine_state.py's, read before and after each one.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path

from .machine_state import (ROOT, cpu_freq_mhz, cpu_governor, read_number, read_text,
                            temperature_c)

LIBRARIES = ("numpy", "onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnx",
             "torch", "torchvision", "openvino", "ai-edge-litert", "tflite-runtime", "pillow",
             "neural-compressor")
ENGINE_DIR = Path(__file__).resolve().parent
def _cpuinfo() -> tuple[str | None, list[str]]:
    """Model name and flags of the first CPU (x86 'flags', Arm 'Features')."""
    model, flags = None, []
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = value.split()
    return model or platform.processor() or None, flags


def _lscpu_model() -> str | None:
    """``lscpu``'s model name: on a Raspberry Pi 5 "Cortex-A76", which its /proc/cpuinfo (no
    "model name" line on Arm kernels) does not say."""
    exe = shutil.which("lscpu")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=15,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "model name" and value.strip() not in ("", "-"):
            return value.strip()
    return None


def board_model() -> str | None:
    """The board as its device tree names it ("Raspberry Pi 5 Model B Rev 1.0"), or None."""
    try:
        return Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace") or None
    except OSError:
        return None


def cpu_model() -> tuple[str | None, list[str]]:
    """The CPU's name and flags: /proc/cpuinfo on x86; on Arm lscpu first (cpuinfo there has no
    model name, or qemu's generic one), then the board's own name."""
    model, flags = _cpuinfo()
    if platform.machine().lower() in ("aarch64", "arm64", "armv7l"):
        model = _lscpu_model() or model or board_model()
    return model, flags


def emulated() -> bool:
    """Whether this process runs under qemu-user (an arm64 container on an x86 machine): its
    timings are not the device's. qemu hides itself from /proc/self, not from the processes
    around us (our parent shell, the container's PID 1), whose executable is qemu. The
    SERVEBENCH_EMULATED variable (1/0) overrides the guess."""
    forced = os.environ.get("SERVEBENCH_EMULATED", "").strip().lower()
    if forced in ("1", "true", "yes", "0", "false", "no"):
        return forced in ("1", "true", "yes")
    for pid in {os.getppid(), 1}:
        try:
            if "qemu" in Path(os.readlink(f"/proc/{pid}/exe")).name:
                return True
        except OSError:
            continue
    return False


def _cgroup_paths(root: Path) -> dict[str, str]:
    """Controller -> this process's cgroup path ("" for the v2 unified hierarchy)."""
    paths = {}
    for line in (read_text(root / "proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def _upwards(base: Path, rel: str) -> list[Path]:
    """The cgroup folder and its ancestors up to the mount, deepest first (a limit anywhere
    above applies too). In a container the mount often is the container's cgroup itself,
    where the host's path does not exist: then the mount alone."""
    here = base / rel.strip("/")
    out = []
    while True:
        if here.is_dir():
            out.append(here)
        if here == base or base not in here.parents:
            break
        here = here.parent
    return out or [base]


def _tightest(limits: list[tuple[int, int]]) -> tuple[int | None, int | None]:
    if not limits:
        return None, None
    return min(limits, key=lambda qp: qp[0] / qp[1])


def cgroup_cpu(root: Path = ROOT) -> dict | None:
    """The CPU limit of this process's cgroup: ``quota_us`` / ``period_us`` (``cpus`` = their
    ratio, None: unlimited) and ``cpuset``, from cgroup v2 (cpu.max) or v1 (cfs_quota_us);
    None where no cgroup filesystem is readable. A container limited to 2 CPUs on a 64-core
    node runs at 2 CPUs' speed whatever cpu_count says."""
    mount = root / "sys/fs/cgroup"
    paths = _cgroup_paths(root)
    limits: list[tuple[int, int]] = []
    if (mount / "cgroup.controllers").is_file():  # v2, unified
        version, dirs = 2, _upwards(mount, paths.get("", "/"))
        for d in dirs:
            quota, _, period = (read_text(d / "cpu.max") or "max").partition(" ")
            if quota.isdigit() and period.isdigit():
                limits.append((int(quota), int(period)))
        cpuset = next((c for d in dirs if (c := read_text(d / "cpuset.cpus.effective"))), None)
    elif (mount / "cpu").is_dir() or (mount / "cpu,cpuacct").is_dir():  # v1
        version = 1
        cpu_mount = mount / "cpu" if (mount / "cpu").is_dir() else mount / "cpu,cpuacct"
        for d in _upwards(cpu_mount, paths.get("cpu", "/")):
            quota = read_number(d / "cpu.cfs_quota_us")
            period = read_number(d / "cpu.cfs_period_us")
            if quota is not None and period and quota > 0:
                limits.append((int(quota), int(period)))
        cpuset = next((c for d in _upwards(mount / "cpuset", paths.get("cpuset", "/"))
                       if (c := read_text(d / "cpuset.effective_cpus")
                               or read_text(d / "cpuset.cpus"))),
                      None)
    else:
        return None
    quota, period = _tightest(limits)
    return {"version": version, "quota_us": quota, "period_us": period,
            "cpus": round(quota / period, 3) if quota and period else None, "cpuset": cpuset}


def kernel(root: Path = ROOT) -> str:
    return read_text(root / "proc/sys/kernel/osrelease") or platform.release()


def _memory_bytes(field: str = "MemTotal", root: Path = ROOT) -> int | None:
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory_bytes(root: Path = ROOT) -> int | None:
    """Memory the kernel could give a new process without swapping (MemAvailable)."""
    return _memory_bytes("MemAvailable", root)


def usable_cpus(root: Path = ROOT) -> int:
    """CPUs this process may run on: its affinity, less a tighter cgroup quota (whole CPUs)."""
    usable = _affinity_cpus()
    quota = (cgroup_cpu(root) or {}).get("cpus")
    return max(1, min(usable, int(quota))) if quota else usable


def _affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _gpus() -> list[dict] | None:
    """NVIDIA GPUs with their driver, or None where there is no nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=15, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory_mib": parts[2]})
    return gpus or None


def _versions() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return versions


def _ort_providers() -> list[str] | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.get_available_providers()


def git_revision(path: Path = ENGINE_DIR) -> str | None:
    """The commit the engine came from, when it runs from a git checkout (a copied folder on a
    node has none: null, not a guess). ``+dirty`` when tracked files changed."""
    git = shutil.which("git")
    if not git:
        return None
    try:
        rev = subprocess.run([git, "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run([git, "-C", str(path), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def runtime_image() -> dict | None:
    """The container image the engine runs in, as the benchmark role names it (docker run -e):
    its tag and ID (sha256 of its config). None outside a servebench image."""
    name = os.environ.get("SERVEBENCH_IMAGE")
    if not name:
        return None
    return {"name": name, "id": os.environ.get("SERVEBENCH_IMAGE_ID") or None}


def collect(threads: int | None, root: Path = ROOT) -> dict:
    cpu_name, cpu_flags = cpu_model()
    return {
        "hostname": socket.gethostname(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "kernel": kernel(root),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": cpu_name,
        "board": board_model(),
        # Under qemu-user every timing is the emulator's: no figure of the device it imitates.
        "emulated": emulated(),
        "cpu_flags": cpu_flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": _affinity_cpus(),
        # None: each runtime's default (ORT: one intra-op thread per physical core).
        "threads": threads,
        "memory_bytes": _memory_bytes(),
        "cpu_governor": cpu_governor(root),
        "cpu_freq_mhz": cpu_freq_mhz(root),
        "cgroup_cpu": cgroup_cpu(root),
        "temperature_c": temperature_c(root),
        "gpus": _gpus(),
        "libraries": _versions(),
        "ort_providers": _ort_providers(),
        "git_revision": git_revision(),
        "runtime_image": runtime_image(),
    }
