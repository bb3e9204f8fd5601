"""Sources read by running a command: a Raspberry Pi 5's PMIC and a BMC's DCMI power reading.

``vcgencmd pmic_read_adc`` prints one line per PMIC channel, a current or a voltage::

      VDD_CORE_A current(7)=2.04590000A
      VDD_CORE_V volt(15)=0.80000000V

Power is the sum over rails of V*A, matched by rail name (EXT5V_V and BATT_V have no current).
It is the board's draw after its regulators: the PMIC's own conversion losses and what USB
devices take from 5 V are not in it. ``ipmitool dcmi power reading`` gives the whole node's
draw as its BMC sees it ("Instantaneous power reading: 215 Watts"), usually once a second.
Each call costs milliseconds (vcgencmd) to a second (a slow BMC): they are sampled, and the
record carries the sampling period actually achieved.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Callable

from .meter import SourceError

PMIC_ARGV = ["vcgencmd", "pmic_read_adc"]
IPMI_ARGV = ["ipmitool", "dcmi", "power", "reading"]
# A vcgencmd call is a process start: four a second keeps the sampler's share of a Pi 5's four
# cores small while a 10 s window still holds 40 samples.
PMIC_POLL_S = 0.25
# BMCs refresh their power reading about once a second.
IPMI_POLL_S = 1.0
COMMAND_TIMEOUT_S = 10

Run = Callable[[list[str]], str]

_RAIL = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([0-9.]+)[AV]\s*$")
_IPMI_WATTS = re.compile(r"Instantaneous power reading:\s*([0-9.]+)\s*Watts")
_IPMI_STATE = re.compile(r"Power reading state is:\s*(\w+)")
_IPMI_PERIOD = re.compile(r"Sampling period:\s*(\d+)\s*Seconds")


def run_command(argv: list[str]) -> str:
    """The command's stdout; SourceError with the reason when it is missing or fails."""
    exe = shutil.which(argv[0])
    if not exe:
        raise SourceError(f"{argv[0]} is not installed")
    shown = " ".join(argv)
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SourceError(f"`{shown}` took over {COMMAND_TIMEOUT_S} s") from None
    except OSError as exc:
        raise SourceError(f"`{shown}`: {exc}") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[:1]
        raise SourceError(f"`{shown}` exited {proc.returncode}: {said[0] if said else ''}")
    return proc.stdout


def pmic_rail_watts(text: str) -> dict[str, float]:
    """Rail -> V*A for every rail with both a current and a voltage line."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        match = _RAIL.match(line)
        if match:
            rail, unit, value = match.groups()
            (amps if unit == "A" else volts)[rail] = float(value)
    return {rail: volts[rail] * amps[rail] for rail in amps if rail in volts}


def ipmi_reading(text: str) -> tuple[float, float | None]:
    """(instantaneous watts, the BMC's statistics period in s or None)."""
    watts = _IPMI_WATTS.search(text)
    if not watts:
        raise SourceError("no 'Instantaneous power reading' in ipmitool's output")
    state = _IPMI_STATE.search(text)
    if state and state.group(1).lower() != "activated":
        raise SourceError(f"the BMC's power reading is {state.group(1)}")
    period = _IPMI_PERIOD.search(text)
    return float(watts.group(1)), float(period.group(1)) if period else None


class PmicSource:
    name = "pi5-pmic"
    kind = "power"
    period_s = poll_s = PMIC_POLL_S
    wrap_j: dict = {}

    def __init__(self, run: Run = run_command):
        self.run = run
        rails = self.read()
        self.counted = sorted(rails)
        self.detail = {"scope": "Raspberry Pi 5 PMIC rails (after the regulators; USB "
                                "devices and conversion losses not included)",
                       "command": " ".join(PMIC_ARGV), "rails": self.counted}

    def read(self) -> dict[str, float]:
        text = self.run(PMIC_ARGV)
        rails = pmic_rail_watts(text)
        if not rails:
            first = text.strip().splitlines()[:1]
            raise SourceError("`vcgencmd pmic_read_adc` reported no rail with current and "
                              f"voltage ({first[0] if first else 'no output'}): not a Pi 5")
        return rails


class IpmiSource:
    name = "ipmi-dcmi"
    kind = "power"
    period_s = poll_s = IPMI_POLL_S
    wrap_j: dict = {}
    counted = ["node"]

    def __init__(self, run: Run = run_command):
        self.run = run
        _, period = ipmi_reading(run(IPMI_ARGV))
        self.detail = {"scope": "whole node at its power supplies, as the BMC reports it",
                       "command": " ".join(IPMI_ARGV), "bmc_statistics_period_s": period}

    def read(self) -> dict[str, float]:
        return {"node": ipmi_reading(self.run(IPMI_ARGV))[0]}
