"""Energy per inference (issue 21): each reader against its real format with hand-computed
arithmetic (a fake powercap tree with a wrap-around, a fake NVML binding, recorded-layout
pmic_read_adc and ipmitool output), the short-window rule, no source -> null with the reason,
and once for real on this machine."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import pytest

from servebench_engine import energy
from servebench_engine.energy import commands

DATA = Path(__file__).parent / "data" / "energy"
PMIC_LOAD = (DATA / "pmic_read_adc_load.txt").read_text()
PMIC_IDLE = (DATA / "pmic_read_adc_idle.txt").read_text()
IPMI = (DATA / "ipmitool_dcmi_power_reading.txt").read_text()


class Clock:
    """perf_counter and sleep for a meter: time moves only when the test (or sleep) says."""

    def __init__(self, on_sleep=None):
        self.now = 100.0
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.on_sleep:
            self.on_sleep(seconds)
        self.now += seconds


def no_commands(argv):
    raise energy.SourceError(f"{argv[0]} is not installed")


def replay(*outputs):
    """A command runner answering each call with the next recorded output (the last repeats)."""
    calls = []

    def run(argv):
        calls.append(argv)
        return outputs[min(len(calls), len(outputs)) - 1]

    run.calls = calls
    return run


def meter_with(sources, clock: Clock) -> energy.Meter:
    """No poll threads: the test takes each sample itself (Window.sample)."""
    return energy.Meter(sources, clock=clock, sleep=clock.sleep, poll=False)


def window_over(source, seconds: float, inferences: int = 10) -> dict:
    """The figure of one window of ``seconds`` (fake time) over ``source`` alone."""
    clock = Clock()
    meter = meter_with([source], clock)
    with meter.window() as win:
        clock.sleep(seconds)
    return win.figure(inferences)


def drive(meter: energy.Meter, clock: Clock) -> energy.Meter:
    meter.clock, meter.sleep, meter.poll = clock, clock.sleep, False
    return meter


# ---- RAPL ------------------------------------------------------------------------------------

MAX_RANGE_UJ = 262_143_328_850  # what Intel server packages report


class Powercap:
    """A fake /sys/class/powercap whose counters advance by watts x seconds on each sleep."""

    def __init__(self, root: Path):
        self.base = root / "sys/class/powercap"
        self.watts: dict[str, float] = {}

    def zone(self, dirname: str, name: str, start_uj: int, watts: float) -> None:
        path = self.base / dirname
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
        (path / "energy_uj").write_text(f"{start_uj}\n")
        self.watts[dirname] = watts

    def advance(self, seconds: float) -> None:
        for dirname, watts in self.watts.items():
            path = self.base / dirname / "energy_uj"
            value = int(path.read_text()) + round(watts * seconds * 1e6)
            path.write_text(f"{value % MAX_RANGE_UJ}\n")


def server_tree(root: Path) -> Powercap:
    cap = Powercap(root)
    # package-0 starts 30 J below its range: it wraps within the first seconds of load.
    cap.zone("intel-rapl:0", "package-0", MAX_RANGE_UJ - 30_000_000, 40.0)
    cap.zone("intel-rapl:0:0", "core", 7_000_000, 20.0)
    cap.zone("intel-rapl:0:1", "dram", 9_000_000, 5.0)
    cap.zone("intel-rapl:1", "package-1", 5_000_000_000, 35.0)
    # Client parts repeat the package through MMIO: must not count twice.
    cap.zone("intel-rapl-mmio:0", "package-0", 1_000_000, 40.0)
    return cap


def test_rapl_counts_packages_and_dram_across_a_wraparound(tmp_path):
    cap = server_tree(tmp_path)
    clock = Clock(on_sleep=cap.advance)
    meter = energy.detect(tmp_path, nvml=None, run=no_commands)
    assert meter.label == "rapl"
    drive(meter, clock)

    idle = meter.idle(0.5, probe=False)
    assert idle["valid"], idle
    assert idle["watts"] == pytest.approx(40 + 5 + 35)  # packages + dram; core is in package-0
    assert idle["seconds"] == pytest.approx(0.5)

    cap.watts.update({"intel-rapl:0": 100.0, "intel-rapl:0:0": 70.0, "intel-rapl:1": 60.0})
    counter = cap.base / "intel-rapl:0/energy_uj"
    before = int(counter.read_text())
    with meter.window() as win:
        clock.sleep(2.0)
    assert int(counter.read_text()) < before, "the fake did not wrap: the test proves nothing"

    fig = win.figure(inferences=1000)
    json.dumps(fig)
    assert fig["valid"], fig["reason"]
    domains = fig["sources"][0]["domains"]
    assert domains["package-0"]["joules"] == pytest.approx(200.0)  # across the wrap
    assert domains["package-0/core"] == {"joules": pytest.approx(140.0),
                                         "watts": pytest.approx(70.0), "counted": False}
    assert domains["package-0/dram"]["joules"] == pytest.approx(10.0)
    assert domains["package-1"]["joules"] == pytest.approx(120.0)
    assert fig["joules"] == pytest.approx(330.0)
    assert fig["mean_watts"] == pytest.approx(165.0)
    assert fig["joules_per_inference"] == pytest.approx(0.33)
    assert fig["idle_watts"] == pytest.approx(80.0)
    assert fig["joules_per_inference_above_idle"] == pytest.approx((165 - 80) * 2 / 1000)
    assert fig["source"] == "rapl" and fig["update_period_s"] == 0.001
    assert fig["min_window_s"] == pytest.approx(0.01)


def test_rapl_counter_readable_by_root_only_is_null_with_the_reason(tmp_path, monkeypatch):
    server_tree(tmp_path)
    real = pathlib.Path.read_text

    def guarded(self, *args, **kwargs):
        if self.name == "energy_uj":  # what a non-root reader meets on kernels >= 5.10
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", guarded)
    meter = energy.detect(tmp_path, nvml=None, run=no_commands)
    assert meter.sources == []
    assert "readable by root only" in meter.unavailable["rapl"]
    with meter.window() as win:
        pass
    fig = win.figure(inferences=10)
    assert fig["joules_per_inference"] is None and not fig["valid"]
    assert "readable by root only" in fig["reason"]


# ---- NVML ------------------------------------------------------------------------------------

class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """The calls of nvidia-ml-py's ``pynvml`` the reader makes, answering scripted values per
    GPU: energy in mJ (None: a GPU before Volta, NVML_ERROR_NOT_SUPPORTED) and power in mW."""

    NVMLError = FakeNVMLError

    def __init__(self, names, energy_mj=None, power_mw=None):
        self.names = names
        self.energy_mj = energy_mj
        self.power_mw = power_mw
        self.calls = {"energy": [0] * len(names), "power": [0] * len(names)}
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetName(self, handle):
        return self.names[handle[1]].encode()  # older bindings return bytes

    def _next(self, kind, series, handle):
        i = handle[1]
        values = series[i]
        value = values[min(self.calls[kind][i], len(values) - 1)]
        self.calls[kind][i] += 1
        return value

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy_mj is None:
            raise FakeNVMLError("Not Supported")
        return self._next("energy", self.energy_mj, handle)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._next("power", self.power_mw, handle)


def test_nvml_energy_counter_in_millijoules(tmp_path):
    # Detection reads each counter once, then the window's start and end.
    fake = FakeNvml(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"],
                    energy_mj=[[5_000_000, 5_000_000, 5_450_500],
                               [9_000_000, 9_000_000, 9_140_000]])
    meter = energy.detect(tmp_path, nvml=fake, run=no_commands)
    assert meter.label == "nvml"
    clock = Clock()
    drive(meter, clock)
    with meter.window() as win:
        clock.sleep(3.0)
    fig = win.figure(inferences=500)
    src = fig["sources"][0]
    assert src["kind"] == "counter"
    assert src["detail"]["devices"] == {"gpu0": "NVIDIA H100 80GB HBM3",
                                        "gpu1": "NVIDIA H100 80GB HBM3"}
    assert src["domains"]["gpu0"]["joules"] == pytest.approx(450.5)
    assert src["domains"]["gpu1"]["watts"] == pytest.approx(140.0 / 3)
    assert fig["joules"] == pytest.approx(590.5)
    assert fig["joules_per_inference"] == pytest.approx(590.5 / 500)
    meter.close()
    assert fake.shut


def test_nvml_without_energy_counter_integrates_power_samples():
    fake = FakeNvml(["Tesla P100-PCIE-16GB"], power_mw=[[100_000, 200_000, 200_000, 50_000]])
    clock = Clock()
    source = energy.NvmlSource(fake)
    assert source.kind == "power" and "Not Supported" in source.detail["no_energy_counter"]
    meter = meter_with([source], clock)
    with meter.window() as win:      # 100 W at t=0
        clock.sleep(1.0)
        win.sample()                 # 200 W at t=1
        clock.sleep(1.0)
        win.sample()                 # 200 W at t=2
        clock.sleep(0.5)             # 50 W at t=2.5 (the window's end)
    fig = win.figure(inferences=50)
    # Trapezoids: (100+200)/2*1 + 200*1 + (200+50)/2*0.5 = 150 + 200 + 62.5
    assert fig["joules"] == pytest.approx(412.5)
    assert fig["mean_watts"] == pytest.approx(412.5 / 2.5)
    assert fig["sources"][0]["sampling_period_s"] == pytest.approx(2.5 / 3)
    assert fig["valid"], fig["reason"]  # 2.5 s >= 10 x 0.1 s


def test_a_counter_that_goes_back_without_a_range_is_not_valid():
    fake = FakeNvml(["NVIDIA A100-SXM4-40GB"], energy_mj=[[8_000_000, 8_000_000, 1_000]])
    fig = window_over(energy.NvmlSource(fake), 5.0)
    assert not fig["valid"] and "went back" in fig["reason"]
    assert fig["joules_per_inference"] is None


def test_probe_measures_the_counter_update_period():
    clock = Clock()
    # A counter that moves every 0.05 s of (fake) time, by 1 J.
    fake = FakeNvml(["NVIDIA L40S"], energy_mj=[[0]])
    fake.nvmlDeviceGetTotalEnergyConsumption = lambda h: int(clock.now / 0.05) * 1000
    source = energy.NvmlSource(fake)
    meter = meter_with([source], clock)
    meter.probe_periods()
    assert source.period_s == pytest.approx(0.05, rel=0.02)
    assert source.detail["update_period_measured"] is True
    assert meter.min_window_s == pytest.approx(0.5, rel=0.02)


# ---- Raspberry Pi 5 PMIC and IPMI DCMI -------------------------------------------------------

def test_pmic_rails_from_recorded_output():
    rails = commands.pmic_rail_watts(PMIC_LOAD)
    assert len(rails) == 12  # EXT5V_V and BATT_V have no current line
    assert "EXT5V" not in rails and "BATT" not in rails
    assert rails["VDD_CORE"] == pytest.approx(2.0459 * 0.8)
    assert sum(rails.values()) == pytest.approx(3.41771725)
    assert sum(commands.pmic_rail_watts(PMIC_IDLE).values()) == pytest.approx(1.90897925)


def test_pmic_window_integrates_sampled_readings(tmp_path):
    run = replay(PMIC_IDLE, PMIC_LOAD, PMIC_LOAD, PMIC_IDLE)
    meter = energy.detect(tmp_path, nvml=None, run=run)
    assert meter.label == "pi5-pmic"
    assert run.calls[0] == ["vcgencmd", "pmic_read_adc"]
    clock = Clock()
    drive(meter, clock)
    with meter.window() as win:      # detection took the idle reading; the window starts on load
        clock.sleep(2.0)
        win.sample()                 # load
        clock.sleep(2.0)             # idle at the end
    fig = win.figure(inferences=400)
    load, idle = 3.41771725, 1.90897925
    assert fig["joules"] == pytest.approx(load * 2 + (load + idle) / 2 * 2)
    assert fig["joules_per_inference"] == pytest.approx(fig["joules"] / 400)
    assert fig["sources"][0]["domains"]["VDD_CORE"]["counted"] is True


def test_pmic_on_a_board_without_one_is_no_source(tmp_path):
    run = replay('error=1 error_msg="Command not registered"\n')
    meter = energy.detect(tmp_path, nvml=None, run=run)
    assert "pmic" not in (meter.label or "")
    assert "not a Pi 5" in meter.unavailable["pi5-pmic"]


def test_a_reader_failing_mid_window_makes_the_figure_not_valid(tmp_path):
    outputs = iter([PMIC_LOAD, PMIC_LOAD])

    def run(argv):
        try:
            return next(outputs)
        except StopIteration:
            raise energy.SourceError("`vcgencmd pmic_read_adc` exited 255: VCHI failed") from None

    fig = window_over(commands.PmicSource(run), 5.0)
    assert not fig["valid"] and "VCHI failed" in fig["reason"]


def test_ipmi_dcmi_only_where_it_is_all_there_is(tmp_path):
    replayed = replay(IPMI)

    def run(argv):  # a server with ipmitool and no vcgencmd
        return replayed(argv) if argv[0] == "ipmitool" else no_commands(argv)

    alone = energy.detect(tmp_path / "bare", nvml=None, run=run)
    assert alone.label == "ipmi-dcmi"
    assert alone.sources[0].read() == {"node": 215.0}
    assert alone.sources[0].detail["bmc_statistics_period_s"] == 1.0
    assert alone.min_window_s == pytest.approx(10.0)

    server_tree(tmp_path / "server")
    with_rapl = energy.detect(tmp_path / "server", nvml=None, run=run)
    assert with_rapl.label == "rapl"
    assert with_rapl.unavailable["ipmi-dcmi"].startswith("not used")


def test_ipmi_deactivated_power_reading_is_no_source(tmp_path):
    text = (DATA / "ipmitool_dcmi_power_reading_deactivated.txt").read_text()
    meter = energy.detect(tmp_path, nvml=None, run=replay(text))
    assert meter.sources == []
    assert "deactivated" in meter.unavailable["ipmi-dcmi"]


# ---- the window rule, no source, this machine ------------------------------------------------

def test_window_shorter_than_ten_periods_is_not_valid():
    clock = Clock()
    meter = meter_with([commands.PmicSource(replay(PMIC_LOAD))], clock)
    assert meter.min_window_s == pytest.approx(10 * commands.PMIC_POLL_S)
    with meter.window() as short:
        clock.sleep(meter.min_window_s * 0.4)
    fig = short.figure(inferences=100)
    assert not fig["valid"]
    assert "shorter than 10 sensor periods" in fig["reason"]
    assert fig["joules_per_inference"] is None and fig["mean_watts"] is None
    # what was read stays visible beside the null figure
    assert fig["sources"][0]["joules"] == pytest.approx(3.41771725 * meter.min_window_s * 0.4)

    with meter.window() as long_enough:
        clock.sleep(meter.min_window_s)
    fig = long_enough.figure(inferences=100)
    assert fig["valid"], fig["reason"]
    assert fig["mean_watts"] == pytest.approx(3.41771725)


def test_idle_is_lengthened_to_the_minimum_window():
    clock = Clock()
    meter = meter_with([commands.PmicSource(replay(PMIC_IDLE))], clock)
    idle = meter.idle(0.1)
    assert idle["valid"] and idle["seconds"] == pytest.approx(meter.min_window_s)
    assert idle["watts"] == pytest.approx(1.90897925)


def test_no_source_is_null_with_the_reason_never_an_estimate(tmp_path):
    meter = energy.detect(tmp_path, nvml=None, run=no_commands)
    assert meter.sources == [] and meter.min_window_s is None
    idle = meter.idle(1.0)
    assert idle["watts"] is None and not idle["valid"]
    with meter.window() as win:
        pass
    fig = win.figure(inferences=1000)
    json.dumps(fig)
    assert fig["source"] is None and not fig["valid"]
    for key in ("joules", "joules_per_inference", "mean_watts", "idle_watts"):
        assert fig[key] is None, key
    for name in ("rapl", "nvml", "pi5-pmic", "ipmi-dcmi"):
        assert f"{name}: " in fig["reason"]
    assert "does not exist" in fig["unavailable"]["rapl"]
    assert fig["unavailable"]["nvml"] == "not looked for"


def test_this_machine_reports_its_source_or_why_there_is_none():
    meter = energy.detect()
    with meter.window() as win:
        meter.sleep(meter.min_window_s or 0.01)
    fig = win.figure(inferences=1)
    print(json.dumps(fig, indent=1))
    meter.close()
    if meter.sources:
        assert fig["valid"], fig["reason"]
        assert fig["mean_watts"] > 0
    else:
        assert fig["joules_per_inference"] is None
        assert set(fig["unavailable"]) == {"rapl", "nvml", "pi5-pmic", "ipmi-dcmi"}
        assert all(fig["unavailable"].values())


def test_poll_threads_count_every_wrap_of_a_small_counter():
    """Real time: a counter of 1 J range at 2 W wraps twice in 1.2 s; start and end alone
    would see at most one wrap, the poll thread (every 20 ms) sees each."""
    import time

    class SmallCounter:
        name, kind, period_s, poll_s = "rapl", "counter", 0.001, 0.02
        wrap_j = {"package-0": 1.0}
        counted = ["package-0"]
        detail: dict = {}
        t0 = time.perf_counter()

        def read(self):
            return {"package-0": (2.0 * (time.perf_counter() - self.t0)) % 1.0}

    meter = energy.Meter([SmallCounter()])
    with meter.window() as win:
        time.sleep(1.2)
    fig = win.figure(inferences=12)
    assert fig["valid"], fig["reason"]
    assert fig["sources"][0]["samples"] > 20
    assert fig["joules"] == pytest.approx(2.0 * fig["window_s"], rel=0.02)
    assert fig["mean_watts"] == pytest.approx(2.0, rel=0.02)


def test_module_prints_what_this_node_can_measure():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "servebench_engine.energy", "0.05"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert set(out["unavailable"]) | set((out["source"] or "").split("+")) - {""} >= {
        "rapl", "nvml", "pi5-pmic", "ipmi-dcmi"}
    if out["source"] is None:
        assert out["idle"]["watts"] is None and "no energy source" in out["idle"]["reason"]
    bad = subprocess.run([sys.executable, "-m", "servebench_engine.energy", "nan"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and not bad.stdout


def test_sampling_keeps_its_rate_when_a_read_is_slow():
    """Real time: a reader taking 30 ms, sampled every 50 ms, is sampled every 50 ms (not 80)
    and the record says so; a constant 5 W integrates to 5 W."""
    import time

    class SlowPower:
        name, kind, period_s, poll_s = "pi5-pmic", "power", 0.05, 0.05
        wrap_j: dict = {}
        counted = ["VDD_CORE"]
        detail: dict = {}

        def read(self):
            time.sleep(0.03)
            return {"VDD_CORE": 5.0}

    meter = energy.Meter([SlowPower()])
    with meter.window() as win:
        time.sleep(1.0)
    fig = win.figure(inferences=100)
    assert fig["valid"], fig["reason"]
    assert fig["sources"][0]["sampling_period_s"] == pytest.approx(0.05, rel=0.3)
    assert fig["mean_watts"] == pytest.approx(5.0)
