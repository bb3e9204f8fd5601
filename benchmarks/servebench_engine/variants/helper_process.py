"""Run a helper script in its own Python environment, with a deadline and a log.

Some steps need packages that cannot live beside the engine's (Neural Compressor wants numpy<2
and onnx 1.16; the TFLite converter pulls a second torch, jax and TensorFlow's pieces), so they
run as subprocesses on another environment's Python. What they print goes to a log file that
outlives the run; lines starting with ``servebench: `` are relayed as progress.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Callable

PROGRESS_PREFIX = "servebench: "


class HelperFailed(Exception):
    """The helper could not start, or ran past its deadline."""


def absolute_python(text: str) -> Path:
    """The interpreter path as given, made absolute.

    A relative path means relative to where the engine was started, not to the folder the
    subprocess runs in; a bare name ("python3") is left for PATH to find."""
    python = Path(text).expanduser()
    return python if python.is_absolute() or python.parent == Path() else python.absolute()


def run_relaying(command: list[str], cwd: Path, log_path: Path, timeout_s: int,
                 log: Callable[[str], None]) -> tuple[int, str]:
    """Run ``command`` (stdout and stderr merged into ``log_path``); return (exit status, last
    non-empty line): a helper prints its result, or its one-line error, last."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The helper's environment must import its own packages, not the engine's.
    for leaked in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(leaked, None)
    script = Path(command[1]).name if len(command) > 1 else command[0]
    last_line = ""
    with open(log_path, "w", encoding="utf-8") as log_file:
        try:
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as exc:
            message = f"cannot start {command[0]}: {exc.strerror or exc}"
            log_file.write(message + "\n")
            raise HelperFailed(message) from exc

        def pump() -> None:
            nonlocal last_line
            assert proc.stdout is not None
            for line in proc.stdout:
                log_file.write(line)
                if line.strip():
                    last_line = line.strip()
                if line.startswith(PROGRESS_PREFIX):
                    log(line[len(PROGRESS_PREFIX) :].rstrip())

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            reader.join(timeout=5)
            raise HelperFailed(f"{script} ran past {timeout_s} s and was stopped") from None
        except BaseException:
            # Ctrl-C or SIGTERM in the engine: the helper must not go on writing artifacts.
            proc.kill()
            proc.wait(timeout=30)
            raise
        reader.join(timeout=30)
    return rc, last_line


def run_for_json(what: str, command: list[str], cwd: Path, log_path: Path, timeout_s: int,
                 log: Callable[[str], None]) -> dict:
    """Run a helper that prints its result as one JSON line, last (helpers/script_io.py); that
    result, or a RuntimeError naming ``what`` with the helper's own error line and its log."""
    try:
        rc, last_line = run_relaying(command, cwd, log_path, timeout_s, log)
    except HelperFailed as exc:
        raise RuntimeError(f"{what}: {exc}") from None
    if rc != 0:
        raise RuntimeError(f"{what} failed (exit {rc}): {last_line[-300:]} (log: {log_path})")
    try:
        return json.loads(last_line)
    except ValueError:
        raise RuntimeError(f"{what} printed no result (log: {log_path})") from None
