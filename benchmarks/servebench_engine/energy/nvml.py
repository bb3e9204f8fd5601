"""NVIDIA GPUs through NVML (nvidia-ml-py, NVIDIA's own binding, imported as ``pynvml``).

Volta and newer GPUs keep an energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
the driver loaded): the window reads it like RAPL. Older ones only report power
(``nvmlDeviceGetPowerUsage``, mW), which is sampled every POWER_POLL_S and integrated.
NVML numbers GPUs on its own: CUDA_VISIBLE_DEVICES does not narrow what it sees, so every GPU
of the node (or of the container) is counted, and ``detail.devices`` says which.
"""

from __future__ import annotations

from .meter import SourceError

# NVML does not document how often the energy counter moves: this nominal figure only holds
# until Meter.probe_periods measures it (``detail.update_period_measured``).
ENERGY_PERIOD_S = 0.1
ENERGY_POLL_S = 1.0
POWER_POLL_S = 0.1


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlSource:
    name = "nvml"

    def __init__(self, nvml):
        self.nvml = nvml
        try:
            nvml.nvmlInit()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
        except nvml.NVMLError as exc:
            raise SourceError(f"NVML: {exc}") from None
        if not handles:
            raise SourceError("NVML sees no GPU")
        self.handles = {f"gpu{i}": h for i, h in enumerate(handles)}
        self.counted = list(self.handles)
        try:
            for handle in handles:
                nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self.kind, no_counter = "counter", None
        except nvml.NVMLError as exc:  # before Volta: NVML_ERROR_NOT_SUPPORTED
            self.kind, no_counter = "power", str(exc)
        self.period_s = ENERGY_PERIOD_S if self.kind == "counter" else POWER_POLL_S
        self.poll_s = ENERGY_POLL_S if self.kind == "counter" else POWER_POLL_S
        self.wrap_j = {key: None for key in self.handles}
        self.detail = {
            "scope": "GPU boards", "devices": dict(zip(self.handles, names)),
            "reading": ("nvmlDeviceGetTotalEnergyConsumption (mJ)" if self.kind == "counter"
                        else "nvmlDeviceGetPowerUsage (mW), sampled and integrated"),
            "no_energy_counter": no_counter}

    def read(self) -> dict[str, float]:
        nvml = self.nvml
        call = (nvml.nvmlDeviceGetTotalEnergyConsumption if self.kind == "counter"
                else nvml.nvmlDeviceGetPowerUsage)
        try:
            return {key: call(handle) / 1000 for key, handle in self.handles.items()}
        except nvml.NVMLError as exc:
            raise SourceError(f"NVML: {exc}") from None

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass
