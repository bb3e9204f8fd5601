"""bench-run under hostile conditions (issue 10, defect 6): SIGTERM mid-run, a full disk, a
read-only folder for --export-only. One line naming the path, a documented exit code, no
traceback, no truncated file, no temporary servebench-* folder left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from servebench_engine.errors import ExitCode

from .conftest import make_onnx

REPO = Path(__file__).resolve().parents[2]


def engine(args: list, tmp: Path, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "FOOD11_DATA_DIR"}
    env.update(TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen([sys.executable, "-m", "servebench_engine", *map(str, args)],
                            cwd=REPO / "benchmarks", env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@contextmanager
def tmpfs(where: Path, options: str):
    """A small tmpfs of our own (root only): a real full or read-only filesystem."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_sigterm_mid_run_keeps_records_marks_interrupted_and_cleans_up(tmp_path):
    model = make_onnx(tmp_path / "tiny.onnx", ["N", 3, 224, 224])
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    proc = engine(["--model", model, "--profile", "quick", "--out", out,
                   "--variants", "onnx-cpu,onnx-optimized,onnx-int8-dynamic"], scratch)
    deadline = time.monotonic() + 120
    while not (out / "onnx-cpu.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no record within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, (stdout, stderr)
    assert "terminated" in one_line_error(stderr)
    suite = json.loads((out / "suite.json").read_text())
    assert suite["status"] == "interrupted" and suite["finished_at"]
    assert suite["results"]["onnx-cpu"]["status"] == "ok"
    assert json.loads((out / "onnx-cpu.json").read_text())["status"] == "ok"
    assert list(scratch.glob("servebench-*")) == [], "temporary servebench-* folders left behind"
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.partial"))
    assert workers_of(scratch) == [], "a variant's child process outlived the engine"


def workers_of(scratch: Path) -> list[int]:
    """The engine's child processes still alive whose job lies under ``scratch``."""
    alive = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"servebench_engine.worker" in cmdline and any(str(scratch).encode() in a
                                                          for a in cmdline):
            alive.append(int(proc.name))
    return alive


def test_full_disk_is_one_line_naming_the_path_and_no_truncated_file(tmp_path):
    model = make_onnx(tmp_path / "tiny.onnx", ["N", 3, 224, 224])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with tmpfs(tmp_path / "disk", "size=256k") as disk:
        # Fill it: the first record the engine writes meets a full disk.
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        proc = engine(["--model", model, "--profile", "smoke", "--out", disk / "run",
                       "--variants", "onnx-cpu"], scratch)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.FILE == 7, (stdout, stderr)
        line = one_line_error(stderr)
        assert str(disk / "run") in line and "No space left" in line
        left = [p.name for p in (disk / "run").rglob("*") if p.is_file()]
        assert not [n for n in left if n.endswith((".tmp", ".partial"))], left
        for name in left:   # whatever landed is whole
            if name.endswith(".json"):
                json.loads((disk / "run" / name).read_text())
    assert list(scratch.glob("servebench-*")) == []


def test_export_only_into_a_read_only_folder_is_one_line(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    model = make_onnx(tmp_path / "tiny.onnx", ["N", 3, 224, 224])
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        proc = engine(["--model", model, "--export-only", ro / "model.onnx"], scratch)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (stdout, stderr)
        assert str(ro) in one_line_error(stderr) and "not writable" in stderr
        assert list(ro.iterdir()) == []


def test_a_sigterm_python_swallows_is_raised_again_without_a_second_line(capsys):
    """A signal landing while Python runs an at-fork hook or a __del__ has its exception
    swallowed ("Exception ignored in"): the engine then ran the whole suite after a SIGTERM.
    raise_if_signalled (called before and after each child starts) raises it again."""
    from servebench_engine import errors

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))  # the handler runs here, inside __del__: swallowed

    def body():
        Finalised()  # gone at once: its __del__ runs
        errors.raise_if_signalled()
        raise AssertionError("the swallowed SIGTERM was not raised again")

    assert errors.exit_status(body) == errors.ExitCode.TERMINATED
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: terminated (SIGTERM); the records finished before "
                                        "are kept"], err


def test_a_sigterm_while_a_child_starts_stops_that_child_too(tmp_path, monkeypatch):
    """The CI failure: SIGTERM landed inside Popen, after the fork, before the child was
    registered; the cleanup did not know it, removed the job folder, and the child died on a
    missing job.json with a traceback. The signal is now held until the child is registered."""
    from servebench_engine import errors, worker

    started = []
    real_start = worker._start

    def start_then_signal(job, job_path):
        proc = real_start(job, job_path)
        started.append(proc)
        os.kill(os.getpid(), signal.SIGTERM)  # as if it landed at Popen's last bytecode
        sum(range(1000))
        return proc

    monkeypatch.setattr(worker, "_start", start_then_signal)
    job_path = tmp_path / "job.json"
    job = {"parent": os.getpid(), "result": str(tmp_path / "record.json")}

    def body():
        worker.run_children([(job, job_path, lambda line: None)], 1)

    assert errors.exit_status(body) == errors.ExitCode.TERMINATED
    assert len(started) == 1 and started[0].poll() is not None, "the child outlived the parent"


def test_a_child_whose_job_folder_is_gone_leaves_quietly(tmp_path):
    """A child that starts after its parent removed the job folder: interrupted, no traceback."""
    done = subprocess.run([sys.executable, "-m", "servebench_engine.worker",
                           str(tmp_path / "gone" / "job.json")], cwd=REPO / "benchmarks",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == ExitCode.INTERRUPTED, done
    assert "Traceback" not in done.stderr, done.stderr
