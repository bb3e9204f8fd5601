"""RAPL energy counters through the powercap tree (``/sys/class/powercap/intel-rapl:*``).

Intel's packages expose package, core, uncore, DRAM and psys zones; AMD Zen's expose the same
``intel-rapl`` zones (package, core). Each zone's ``energy_uj`` is a cumulative counter that
wraps to 0 past ``max_energy_range_uj``. Since kernel 5.10 (CVE-2020-8694, the PLATYPUS
side channel) ``energy_uj`` is readable by root only: that is the usual reason a server with
RAPL still gives no figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .meter import SourceError

POWERCAP = "sys/class/powercap"
# Intel's SDM: the energy status registers update about every 976 µs.
UPDATE_PERIOD_S = 0.001
# AMD's 32-bit counters span about 4.3 kJ: 21 s at 200 W. A read each second sees every wrap.
POLL_S = 1.0
SCOPE = "CPU packages (and DRAM where the platform exposes it): not the rest of the node"


@dataclass(frozen=True)
class Zone:
    key: str                # "package-0", "package-0/core"
    path: Path
    range_j: float | None   # where the counter wraps; None: max_energy_range_uj unreadable


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def zones(root: Path) -> list[Zone]:
    """The zones with an energy counter. ``intel-rapl-mmio:*`` (the same package read through
    MMIO on client parts) does not match the glob, so nothing is counted twice."""
    base = root / POWERCAP
    names = {d.name: _text(d / "name") or d.name for d in base.glob("intel-rapl:*")}
    found = []
    for dirname in sorted(names):
        path = base / dirname
        if not (path / "energy_uj").exists():
            continue
        parent = dirname.rsplit(":", 1)[0]
        key = f"{names[parent]}/{names[dirname]}" if parent in names else names[dirname]
        span = _text(path / "max_energy_range_uj")
        found.append(Zone(key, path, int(span) / 1e6 if span and span.isdigit() else None))
    return found


def counted(keys: list[str]) -> list[str]:
    """The zones that add up without overlap: packages plus DRAM (outside the package); psys
    (the whole SoC platform, packages included) only where there is nothing else."""
    leaf = {k: k.rsplit("/", 1)[-1] for k in keys}
    chosen = [k for k in keys if (leaf[k].startswith("package") and "/" not in k)
              or leaf[k] == "dram"]
    return chosen or [k for k in keys if leaf[k] == "psys"]


class RaplSource:
    name = "rapl"
    kind = "counter"
    period_s = UPDATE_PERIOD_S
    poll_s = POLL_S

    def __init__(self, root: Path = Path("/")):
        if not (root / POWERCAP).is_dir():
            raise SourceError(f"{root / POWERCAP} does not exist (no powercap driver: virtual "
                              "machines have none; on bare metal load intel_rapl_msr)")
        self.zones = zones(root)
        if not self.zones:
            raise SourceError(f"no intel-rapl zone with an energy counter in {root / POWERCAP}")
        self.wrap_j = {z.key: z.range_j for z in self.zones}
        self.counted = counted([z.key for z in self.zones])
        self.detail = {"scope": SCOPE, "zones": {z.key: z.path.name for z in self.zones},
                       "max_energy_range_j": self.wrap_j}
        self.read()  # unreadable counters fail here, at detection, not mid-window

    def read(self) -> dict[str, float]:
        values = {}
        for zone in self.zones:
            path = zone.path / "energy_uj"
            try:
                values[zone.key] = int(path.read_text()) / 1e6
            except PermissionError:
                raise SourceError(f"{path} is readable by root only (kernels >= 5.10, "
                                  "CVE-2020-8694): run the engine as root or make it readable "
                                  "(chmod o+r, a udev rule)") from None
            except (OSError, ValueError) as exc:
                raise SourceError(f"{path}: {exc}") from None
        return values
