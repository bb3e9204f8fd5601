"""What the TFLite helper scripts (convert_tflite.py, quantize_tflite.py) share: how they talk to
the engine. Standard library only, like the scripts it serves, and no engine import: they run on
the converter environment's Python, which has neither. A script imports it as a sibling module
(``script_io``), after putting its own folder first on ``sys.path`` (``python -I`` leaves the
script's folder out).

The contract with variants/helper_process.py: stdout holds exactly one JSON line, the result,
printed last (``{"route", "seconds", ...}``) with exit status 0; or one line
``<script>: error: <Type>: <message>`` on stderr and exit status 1. Lines on stderr starting with
``servebench: `` are progress, which the engine relays.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator


def progress(message: str) -> None:
    """A line the engine relays as progress (it reads the prefix)."""
    print(f"servebench: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """litert-torch and ai-edge-quantizer print their progress on stdout (from Python and native
    code), which must hold only the JSON line, so file descriptor 1 is pointed at stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out`` to write (and check) the file at; renamed to ``out`` when
    the block ends without an error, removed otherwise: a reader never sees half a model."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def run_script(name: str, make: Callable[[], dict[str, Any]]) -> int:
    """Run ``make`` (its result holds ``route``) with stdout on stderr; print the JSON line
    (route, seconds, the rest) and return 0, or print the one-line error and return 1."""
    # TensorFlow's oneDNN notice and absl's INFO lines are noise to whoever reads stderr.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    try:
        with stdout_to_stderr():
            record = make()
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"{name}: error: {type(e).__name__}: {first}", file=sys.stderr)
        return 1
    print(json.dumps({"route": record.pop("route"),
                      "seconds": round(time.perf_counter() - started, 3), **record}))
    return 0
