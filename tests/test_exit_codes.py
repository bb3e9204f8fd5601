"""One exit-status enum, one top-level handler: every console script (chi-*, bench-report,
servebench.collect, bench-run) ends a Ctrl-C with 130 and an unexpected error with 1, each one
line ``error: ...`` (a traceback only with SERVEBENCH_DEBUG=1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import servebench_engine.cli as engine_cli
from servebench.errors import ExitCode
from servebench.report import cli as report_cli
from servebench_engine.errors import ExitCode as EngineExitCode
from servebench_engine.errors import exit_code_table

from .report.runs import local_run

# What a Ctrl-C and a bug (any unexpected exception) inside a command's body end as.
CTRL_C_AND_BUG = ("raised, code, says", [
    (KeyboardInterrupt, 130, "error: interrupted"),
    (RuntimeError("lost"), 1,
     "error: unexpected RuntimeError: lost (a bug: rerun with SERVEBENCH_DEBUG=1"),
])


def test_both_sides_have_the_readme_codes():
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "BUG": 1, "USAGE": 2, "STATE": 3, "PROVISION": 4, "TEARDOWN": 5,
        "REGRESSION": 6, "INTERRUPTED": 130, "TERMINATED": 143}
    # One meaning per code on both sides: each side's enum is rows of the engine's one table
    # (3 is the control side's state file; the engine's file error is 7).
    table = {row["name"]: row["code"] for row in exit_code_table()}
    assert len(set(table.values())) == len(table)
    for side in (ExitCode, EngineExitCode):
        assert {c.name: int(c) for c in side}.items() <= table.items()
    assert table["FILE"] == int(EngineExitCode.FILE) != int(ExitCode.STATE)


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in output, output
    return lines[0]


@pytest.fixture
def run_dir(tmp_path):
    return local_run(tmp_path)


@pytest.mark.parametrize(CTRL_C_AND_BUG[0], CTRL_C_AND_BUG[1])
def test_bench_report_ctrl_c_and_a_bug(run_dir, monkeypatch, raised, code, says):
    def boom(*args, **kwargs):
        raise raised

    monkeypatch.setattr(report_cli, "write_report", boom)
    monkeypatch.delenv("SERVEBENCH_DEBUG", raising=False)
    result = CliRunner().invoke(report_cli.main, [str(run_dir)])
    assert result.exit_code == code
    assert _one_line(result.output).startswith(says)


def test_bench_report_bug_with_debug_raises(run_dir, monkeypatch):
    monkeypatch.setattr(report_cli, "write_report",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("bad numbers")))
    result = CliRunner(env={"SERVEBENCH_DEBUG": "1"}).invoke(report_cli.main, [str(run_dir)])
    assert isinstance(result.exception, ValueError) and result.exit_code == 1


def test_bench_report_usage_error_is_one_line_2(tmp_path):
    result = CliRunner().invoke(report_cli.main, [str(tmp_path), "--bogus"])
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert "No such option '--bogus'" in line and line.endswith("(see --help)")


def test_chi_status_ctrl_c_is_130(tmp_path):
    """A real SIGINT to a real chi-status, blocked opening its state file (a FIFO no one writes)."""
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "SERVEBENCH_DEBUG"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from servebench.provision.cli import chi_status; chi_status()",
         "--state", str(fifo)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # SIGINT as a terminal's Ctrl-C delivers it, even under a parent that ignores it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    # Blocked in open(2) until a writer comes (wchan wait_for_partner, fifo_open on older kernels).
    while not any(w in Path(f"/proc/{proc.pid}/wchan").read_text() for w in ("partner", "fifo")):
        assert time.monotonic() < deadline and proc.poll() is None, "never blocked on the FIFO"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (130, "", "error: interrupted\n")


@pytest.mark.parametrize(CTRL_C_AND_BUG[0], CTRL_C_AND_BUG[1])
def test_chi_down_ctrl_c_and_a_bug(tmp_path, monkeypatch, raised, code, says):
    from servebench.provision import cli as chi

    def boom(*args, **kwargs):
        raise raised

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SERVEBENCH_DEBUG", raising=False)
    monkeypatch.setattr(chi, "_find_state", boom)
    result = CliRunner().invoke(chi.chi_down, [])
    assert result.exit_code == code
    assert _one_line(result.output).startswith(says)


@pytest.mark.parametrize(CTRL_C_AND_BUG[0], CTRL_C_AND_BUG[1])
def test_bench_run_ctrl_c_and_a_bug(monkeypatch, capsys, raised, code, says):
    def boom(argv):
        raise raised

    monkeypatch.delenv("SERVEBENCH_DEBUG", raising=False)
    monkeypatch.setattr(engine_cli, "run", boom)
    assert engine_cli.main(["--list-variants"]) == code
    captured = capsys.readouterr()
    assert captured.out == "" and _one_line(captured.err).startswith(says)
