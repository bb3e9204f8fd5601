"""One (model, variant, repeat) in a fresh process: ``python -m servebench_engine.worker JOB``.

Why a process per repeat: one process is one window. What a process inherits from the ones
before it (allocator state, thread pools, a warmed-up cache, a frequency the last variant left
behind) makes fresh processes on one machine differ by more than one timed loop's confidence
interval, so each repeat of each variant starts from nothing, as a user's server would.

The parent (:func:`run_child`, or :func:`run_children` for several at once: the slow
preparations, whose children only make a variant's artifacts) writes a small JSON job and reads
the child's progress lines on its stdout; the child rebuilds the variant's Context from the job
(the image splits are shared as .npy files, memory-mapped copy-on-write, so a child loads them
in no time), measures, and
writes its record to ``job["result"]`` atomically. Exit 0: a record was written (the variant
may still be an error or skipped: the record says so); 130: interrupted (Ctrl-C or a
KeyboardInterrupt inside the variant), which stops the suite. Anything else (a segfault, the
OOM killer, a signal) is the variant's error record, naming the signal or the exit status.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from . import errors, results, variant_run, variants
from .errors import ExitCode
from .context import Context, Split
from .model import torch_factory
from .profiles import LoopSpec, Profile
from .settings import Settings

# job["mode"] of a child that only makes the variant's artifacts (suite.prepare_ahead).
PREPARE = "prepare"
# A child that does not leave within this many seconds of SIGTERM is killed.
STOP_GRACE_S = 5.0


class WorkerDied(RuntimeError):
    """The child measuring a variant ended without writing its record."""


# ---------------------------------------------------------------- parent side

def share_splits(splits: dict[str, Split], folder: Path) -> dict:
    """Write each split once as .npy files the children map; returns the job's ``splits``.

    The parent measures nothing, so its own copy of the images (1.3 GB in the full profile, on a
    Pi with 4 GB) is swapped in place for a read-only map of the file written: one copy in
    memory, not two."""
    shared = {}
    for name, split in list(splits.items()):
        images, labels = folder / f"{name}.images.npy", folder / f"{name}.labels.npy"
        np.save(images, split.images, allow_pickle=False)
        np.save(labels, split.labels, allow_pickle=False)
        shared[name] = {"images": str(images), "labels": str(labels),
                        "paths": [str(p) for p in split.paths]}
        splits[name] = dataclasses.replace(split, images=np.load(images, mmap_mode="r"))
    return shared


def _child_env() -> dict[str, str]:
    """The child imports exactly what the parent imports (the engine from a copied folder,
    variants registered by tests); the helper environments the variants start drop
    PYTHONPATH again (variants.helper_process)."""
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def _die_with_parent(parent: int) -> bool:
    """Linux: this child gets SIGKILL when its parent dies (``timeout -s KILL``, the OOM
    killer). Set by the child itself, not in a preexec_fn: that one runs between fork and exec
    in a parent with threads (torch's), and makes Python run its at-fork hooks, where a signal's
    exception is swallowed. False: the parent is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    return os.getppid() == parent


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the variant's process was killed by {name}"
    return f"the variant's process exited with status {code} without writing its record"


def _start(job: dict, job_path: Path) -> subprocess.Popen:
    results.write_json_atomic(job_path, job)
    Path(job["result"]).unlink(missing_ok=True)
    return subprocess.Popen([sys.executable, "-m", "servebench_engine.worker", str(job_path)],
                            stdout=subprocess.PIPE, text=True, env=_child_env())


def _outcome(job: dict, code: int) -> dict | WorkerDied:
    if code == ExitCode.INTERRUPTED:
        raise KeyboardInterrupt
    result = Path(job["result"])
    if code != 0 or not result.is_file():
        return WorkerDied(describe_exit(code))
    return json.loads(result.read_text())


def _relay(index: int, stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put((index, line.rstrip("\n")))
    lines.put((index, None))  # end of this child's output: it has exited (or closed stdout)


Task = tuple[dict, Path, Callable[[str], None]]


def run_children(tasks: list[Task], lanes: int) -> list[dict | WorkerDied]:
    """Run each (job, job file, say) in a fresh process, at most ``lanes`` at a time, relaying
    each child's progress lines through its own ``say``; returns each job's record, or the
    :class:`WorkerDied` of a child that ended without one, in the order of ``tasks``.

    Lines are read by one thread per child and said from this (the main) thread, so a line is
    never split by another child's, and Ctrl-C or SIGTERM lands here: every running child is
    stopped before the KeyboardInterrupt propagates. A child that exits 130 interrupts too."""
    lines: queue.Queue = queue.Queue()
    outcomes: list[dict | WorkerDied | None] = [None] * len(tasks)
    waiting = list(range(len(tasks)))
    running: dict[int, subprocess.Popen] = {}
    try:
        while waiting or running:
            while waiting and len(running) < max(1, lanes):
                i = waiting.pop(0)
                job, job_path, _ = tasks[i]
                with errors.signals_deferred():  # a signal mid-Popen would orphan the child
                    running[i] = proc = _start(job, job_path)
                threading.Thread(target=_relay, args=(i, proc.stdout, lines), daemon=True).start()
            errors.raise_if_signalled()
            try:
                i, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is not None:
                tasks[i][2](line)
                continue
            outcomes[i] = _outcome(tasks[i][0], running[i].wait())
            del running[i]
    except BaseException:
        for proc in running.values():
            _stop(proc)
        raise
    return outcomes  # type: ignore[return-value]


def run_child(job: dict, job_path: Path, say: Callable[[str], None]) -> dict:
    """Run one job in a fresh process, relaying its progress lines; returns its record.

    KeyboardInterrupt (Ctrl-C, SIGTERM in the parent) stops the child before it propagates; a
    child that dies without a record raises :class:`WorkerDied`."""
    outcome = run_children([(job, job_path, say)], 1)[0]
    if isinstance(outcome, WorkerDied):
        raise outcome
    return outcome


# ---------------------------------------------------------------- child side

def _profile(d: dict) -> Profile:
    return Profile(**{**d, "single": LoopSpec(**d["single"]), "batch": LoopSpec(**d["batch"])})


def profile_job(profile: Profile) -> dict:
    return dataclasses.asdict(profile)


def _splits(shared: dict) -> dict[str, Split]:
    splits = {}
    for name, s in shared.items():
        # Copy-on-write: pages shared with the page cache until a variant writes (none does).
        images = np.asarray(np.load(s["images"], mmap_mode="c", allow_pickle=False))
        splits[name] = Split(images=images, labels=np.load(s["labels"], allow_pickle=False),
                             paths=tuple(Path(p) for p in s["paths"]))
    return splits


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def context(job: dict, say: Callable[[str], None]) -> Context:
    c = job["context"]
    return Context(
        workdir=Path(c["workdir"]),
        profile=_profile(c["profile"]),
        model_onnx=Path(c["model_onnx"]),
        model_is_quantized=c["model_is_quantized"],
        num_classes=c["num_classes"],
        splits=_splits(job["splits"]),
        torch_model=torch_factory(c["torch"]),
        tflite_model=_optional_path(c["tflite_model"]),
        tflite_int8_model=_optional_path(c["tflite_int8_model"]),
        settings=Settings.from_job(job["settings"]),
        log=say,
    )


def _say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        job = json.loads(Path(args[0]).read_text())
    except FileNotFoundError:  # the parent was stopped and removed its job folder meanwhile
        return ExitCode.INTERRUPTED
    if not _die_with_parent(job["parent"]):
        return ExitCode.INTERRUPTED
    try:
        with errors.sigterm_raises():  # the parent stops a child with SIGTERM: unwind, so a
            return _run(job)           # helper it started (a quantiser) is stopped too
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _run(job: dict) -> int:
    try:
        # The parent's registry (a test may have registered a variant of its own).
        variants.REGISTRY[job["variant"]] = job["target"]
        ctx = context(job, _say)
        if job.get("mode") == PREPARE:
            record = variant_run.prepare_variant(job["variant"], ctx, job["run"], _say)
        else:
            record = variant_run.run_variant(job["variant"], ctx, job["run"], _say,
                                             with_accuracy=job["accuracy"])
        results.write_record(Path(job["result"]), record)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except OSError as e:  # the job folder is full: the parent records the error
        _say(f"cannot write the record: {e.filename}: {e.strerror or e}")
        return ExitCode.FILE
    return ExitCode.OK


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The record is written and closed: skip the interpreter's teardown, which takes torch
    # 1.3 s (compiled: 1.8 s) per process here, in a suite that starts one per repeat.
    os._exit(status)
