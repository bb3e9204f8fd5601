"""Energy per inference, labelled by its source (issue 21).

``meter = detect()`` finds what this node can measure: RAPL (x86 CPU packages), NVML (NVIDIA
GPUs, when nvidia-ml-py is installed), a Raspberry Pi 5's PMIC, and only where none of these
exists, the BMC's DCMI power reading. Then, in the process that measures a variant::

    idle = meter.idle(seconds)            # before the variant is loaded
    with meter.window() as win:           # around the timed loop, at least meter.min_window_s
        loop = ...
    record = win.figure(inferences)       # a JSON-able dict

Where nothing can be read, every figure is null and ``reason`` says why for each source:
never an estimate from a TDP. Standard library only; ``pynvml`` is imported when present.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .commands import IpmiSource, PmicSource, Run, run_command
from .meter import MIN_PERIODS, Meter, SourceError, Window
from .nvml import NvmlSource
from .rapl import RaplSource

__all__ = ["detect", "Meter", "Window", "SourceError", "MIN_PERIODS"]

AUTO = "auto"


def _binding(nvml):
    if nvml is None:
        raise SourceError("not looked for")
    if nvml != AUTO:
        return nvml
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise SourceError("nvidia-ml-py (pynvml) is not installed") from None


def detect(root: Path = Path("/"), *, nvml=AUTO, run: Run = run_command) -> Meter:
    """Every source this node has, with the reason for each one it has not. ``nvml``: the
    binding module (tests pass a fake), AUTO to import pynvml, None not to look. ``run``:
    how commands are run (tests pass recorded output)."""
    sources, unavailable = [], {}
    makers = (("rapl", lambda: RaplSource(root)), ("nvml", lambda: NvmlSource(_binding(nvml))),
              ("pi5-pmic", lambda: PmicSource(run)))
    for name, make in makers:
        try:
            sources.append(make())
        except SourceError as exc:
            unavailable[name] = str(exc)
    if sources:
        # The BMC's figure covers the whole node, the finer sources included: never added.
        unavailable["ipmi-dcmi"] = "not used: a finer source measures this node"
    else:
        try:
            sources.append(IpmiSource(run))
        except SourceError as exc:
            unavailable["ipmi-dcmi"] = str(exc)
    return Meter(sources, unavailable)
