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


def collect(threads: int | None) -> dict:
    cpu_model, cpu_flags = _cpuinfo()
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
        "cpu_model": cpu_model,
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
    }
