"""What machine and software produced a record: enough to tell two runs apart.

Reads files and metadata only: library versions come from the installed distributions
(``importlib.metadata``), so recording torch's version does not cost a torch import.
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


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


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


def collect(threads: int | None) -> dict:
    cpu_name, cpu_flags = cpu_model()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "hostname": socket.gethostname(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": cpu_name,
        "board": board_model(),
        # Under qemu-user every timing is the emulator's: no figure of the device it imitates.
        "emulated": emulated(),
        "cpu_flags": cpu_flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        # None: each runtime's default (ORT: one intra-op thread per physical core).
        "threads": threads,
        "memory_bytes": _memory_bytes(),
        "gpus": _gpus(),
        "libraries": _versions(),
        "ort_providers": _ort_providers(),
        "git_revision": git_revision(),
        "runtime_image": runtime_image(),
    }
