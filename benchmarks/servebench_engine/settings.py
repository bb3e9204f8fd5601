"""The engine's run settings: one frozen dataclass, each field the one place a setting is described.

A field's metadata holds its flag (``--`` + the name, dashed), the Ansible knob that sets it (None
where the benchmark role fills the flag itself), its type, bounds and help paragraph. From it:

* ``bench-run``'s arguments (:func:`add_arguments`, which cli.build_parser calls);
* what a worker child gets: ``job["settings"]`` is :meth:`Settings.job`, and the child rebuilds
  the object (:meth:`Settings.from_job`) for its Context, so a new field reaches every variant
  (``ctx.settings.<name>``, or ``ctx.<name>``) with no other file changed;
* ``python -m servebench_engine.settings``: the table as JSON (the settings, the profile names and
  the exit codes), from which the benchmark role builds bench-run's argv and its argument specs.

Bounds are checked when the object is made, whoever makes it: a flag, a job, a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import environment
from .errors import InputError, exit_code_table
from .profiles import PROFILES

HOST_KINDS = ("local", "cpu_server", "gpu_server", "edge")
DATA_ENV = "FOOD11_DATA_DIR"
TYPES = ("int", "float", "str", "path", "bool")
# More fresh processes per variant than this is a typo, not a measurement plan (each one is a
# full measuring window: `full` takes about 30 s per variant and repeat).
MAX_REPEATS = 100
MAX_PREPARE_JOBS = 64


def usable_cpus() -> int:
    return environment.usable_cpus()


def setting(default: Any, kind: str, help: str, *, knob: str | None = None,
            metavar: str | None = None, minimum: int | None = None,
            maximum: int | Callable[[], int] | None = None,
            choices: tuple[str, ...] | None = None, repeatable: bool = False) -> Any:
    """A settings field. ``maximum`` may be a function (a bound of this machine): the engine
    checks it where it runs, and the table prints null for it (the help says what it is)."""
    if kind not in TYPES:
        raise ValueError(f"unknown setting type {kind!r}")
    meta = {"kind": kind, "help": " ".join(help.split()), "knob": knob, "metavar": metavar,
            "min": minimum, "max": maximum, "choices": choices, "repeatable": repeatable}
    if repeatable:
        return field(default=(), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """What one bench-run is asked to do. Field order is the table's (and the role's argv's)."""

    model: tuple[Path, ...] = setting(
        None, "path", metavar="PATH", repeatable=True,
        help="a model: a .onnx (input [N,3,H,W] float32), a .pth (loaded as weights only; "
             "a whole pickled module needs --allow-pickle), or a model by name: timm:NAME, "
             "torchvision:NAME (pretrained weights from the hub), timm:NAME:random (random "
             "weights, recorded so); repeat it to benchmark several side "
             "by side (each named by its file's stem, which must differ; records then are "
             "<name>__<variant>.json); default: MobileNetV2 with an 11-class head and RANDOM "
             "weights (every record says so)")
    variants: str = setting(
        "all", "str", metavar="LIST",
        help="comma-separated variant ids, or all / cpu / gpu (default: all; variants this host "
             "cannot run are recorded as skipped with the reason)")
    profile: str = setting(
        "full", "str", knob="profile", choices=tuple(sorted(PROFILES)),
        help="full: statistically sound (>= 1000 samples and >= 10 s per loop; default); quick: "
             "~2 s per loop, for a first look; smoke: tests only")
    repeats: int | None = setting(
        None, "int", knob="repeats", metavar="N", minimum=1, maximum=MAX_REPEATS,
        help="fresh processes per variant, run interleaved (ABC ABC ...); the record pools "
             "their samples and says whether their medians agree (default: the profile's: smoke "
             f"1, quick 2, full 3; at most {MAX_REPEATS})")
    prepare_jobs: int | None = setting(
        None, "int", knob="benchmark_prepare_jobs", metavar="N", minimum=1,
        maximum=MAX_PREPARE_JOBS,
        help="how many slow preparations (INT8 quantisation, TFLite conversion) run at once "
             "before anything is timed (default: as many as there are usable CPUs and 2 GiB of "
             f"free memory for; at most {MAX_PREPARE_JOBS})")
    data: Path | None = setting(
        None, "path", metavar="DIR",
        help=f"Food-11 tree DIR/{{training,validation,evaluation}}/class_XX/*.jpg (default: "
             f"${DATA_ENV}; with neither, a small synthetic tree, marked synthetic in every "
             "record)")
    out: Path | None = setting(
        None, "path", metavar="DIR",
        help="folder for <variant>.json, suite.json and artifacts/<model>/ (created)")
    tflite_model: tuple[Path, ...] = setting(
        None, "path", metavar="PATH", repeatable=True,
        help="a .tflite model for the tflite variant (default: the model converted with "
             "--tflite-converter-python; with neither, tflite is skipped); with several --model, "
             "one per model, named like it (<model name>.tflite)")
    tflite_int8_model: tuple[Path, ...] = setting(
        None, "path", metavar="PATH", repeatable=True,
        help="a full-integer INT8 .tflite for the tflite-int8 variant (default: the float "
             ".tflite quantised with ai-edge-quantizer in --tflite-converter-python's "
             "environment); it is still checked against the float .tflite (--tflite-model, or "
             "converted) on the evaluation split where one is there, and the record says when "
             "none is; with several --model, one per model, named <model name>.int8.tflite")
    tflite_converter_python: str | None = setting(
        None, "str", metavar="PATH",
        help="Python of the TFLite converter environment (onnx2torch + litert-torch; `make "
             "bench` builds .venv-litert), which turns the model into the float32 .tflite the "
             "tflite variant serves")
    quantizer_python: str | None = setting(
        None, "str", metavar="PATH",
        help="Python of the Neural Compressor environment, for the INT8 static variants")
    host_label: str | None = setting(
        None, "str", metavar="NAME",
        help="host name written in each record (default: this machine's host name)")
    host_kind: str = setting(
        "local", "str", choices=HOST_KINDS,
        help="kind of host, for the report's verdict (default: local)")
    threads: int | None = setting(
        None, "int", knob="benchmark_threads", metavar="N", minimum=1, maximum=usable_cpus,
        help="intra-op threads for every runtime (default: each runtime's own); at most the "
             "CPUs the engine may use on its host (its affinity and cgroup quota)")
    load_variants: str | None = setting(
        None, "str", knob="benchmark_load_variants", metavar="LIST",
        help="comma-separated variant ids (or all, cpu, gpu) whose load mode runs in their first "
             "repeat: a closed-loop concurrency sweep, a Poisson open loop and the knee (the "
             "highest arrival rate whose p99 stays under --load-bound-ms), recorded as `load`; "
             "only those also in --variants run it; none: no load mode (default: the profile's: "
             "quick onnx-cpu, full onnx-cpu and the static INT8 ones, smoke none)")
    load_bound_ms: float | None = setting(
        None, "float", knob="benchmark_load_bound_ms", metavar="MS", minimum=0.1,
        maximum=600_000,
        help="the p99 bound (ms) the load mode's knee search judges each arrival rate by "
             "(default: the load profile's: 20 ms on servers, 200 ms on an edge host; bench.yml "
             "passes the p99_ms of the targets' knee_rps_at_least judging the host's kind)")
    allow_pickle: bool = setting(
        False, "bool", knob="model_allow_pickle",
        help="let a .pth model be a whole pickled module: loading one runs any code it holds, "
             "so only for a file you trust (default: a .pth is loaded as weights only)")
    export_only: Path | None = setting(
        None, "path", metavar="FILE",
        help="write the model's ONNX form (checked; the random-init network when no --model) to "
             "FILE and exit without benchmarking: how a prep host makes the one model every edge "
             "device then serves")
    export_calibration: Path | None = setting(
        None, "path", metavar="FILE",
        help="write the images the INT8 variants calibrate on (the first of the validation split, "
             "as many as --profile's budget: smoke 8, quick 16, full 128; from --data, "
             f"${DATA_ENV} or the synthetic tree; preprocessed as the model wants them) to FILE, a "
             "float32 NCHW .npy, and exit: how a prep host quantises the INT8 .tflite every edge "
             "device then serves")
    list_variants: bool = setting(
        False, "bool", help="print the variant ids and the class of each, and exit")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            values = getattr(self, f.name) if f.metadata["repeatable"] else [getattr(self, f.name)]
            for value in values:
                if value is not None:
                    check(f, value)
        if self.host_label is None:
            object.__setattr__(self, "host_label", socket.gethostname())

    def job(self) -> dict:
        """The settings as JSON-able values, for a worker child's job, with the class they
        are (a test's subclass adds a field: the child then rebuilds that class)."""
        cls = type(self)
        return {"class": f"{cls.__module__}:{cls.__qualname__}",
                "values": {k: _plain(v) for k, v in dataclasses.asdict(self).items()}}

    @staticmethod
    def from_job(job: dict) -> "Settings":
        module, _, name = job["class"].partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{f.name: _typed(f, job["values"][f.name]) for f in dataclasses.fields(cls)})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        return cls(**{f.name: _typed(f, getattr(args, f.name)) for f in dataclasses.fields(cls)})


def flag(f: dataclasses.Field) -> str:
    return "--" + f.name.replace("_", "-")


def _maximum(f: dataclasses.Field) -> int | None:
    limit = f.metadata["max"]
    return limit() if callable(limit) else limit


def check(f: dataclasses.Field, value: Any) -> None:
    """Raise InputError when ``value`` is outside the field's bounds or choices."""
    meta, name = f.metadata, flag(f)
    if meta["choices"] is not None and value not in meta["choices"]:
        raise InputError(f"{name} {value!r} is not one of {', '.join(meta['choices'])}")
    if meta["min"] is not None and value < meta["min"]:
        raise InputError(f"{name} {value} must be at least {meta['min']}")
    limit = _maximum(f)
    if limit is not None and value > limit:
        raise InputError(f"{name} {value} must be at most {limit}")


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _typed(f: dataclasses.Field, value: Any) -> Any:
    if f.metadata["repeatable"]:
        return tuple(_typed_one(f, v) for v in value or ())
    return _typed_one(f, value)


def _typed_one(f: dataclasses.Field, value: Any) -> Any:
    if value is None:
        return None
    return Path(value) if f.metadata["kind"] == "path" else value


def _argument_type(f: dataclasses.Field) -> Callable[[str], Any]:
    kind = f.metadata["kind"]

    def convert(text: str) -> Any:
        if kind == "path":
            return Path(text)
        if kind == "str":
            return text
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a{' whole' if kind == 'int' else ''} number") from None
        try:
            check(f, value)
        except InputError as e:  # argparse names the flag itself
            raise argparse.ArgumentTypeError(str(e).removeprefix(flag(f) + " ")) from None
        return value

    return convert


def add_arguments(parser: argparse.ArgumentParser, cls: type[Settings] = Settings) -> None:
    """One argument per field of ``cls``, in field order."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        text = meta["help"].replace("%", "%%")  # argparse formats help with %
        if meta["kind"] == "bool":
            parser.add_argument(flag(f), action="store_true", help=text)
            continue
        extra: dict[str, Any] = {"help": text, "type": _argument_type(f)}
        if meta["choices"] is not None:
            extra["choices"] = list(meta["choices"])
        else:
            extra["metavar"] = meta["metavar"]
        if meta["repeatable"]:
            extra.update(action="append", default=[])
        else:
            extra["default"] = f.default
        parser.add_argument(flag(f), **extra)


def table(cls: type[Settings] = Settings) -> dict:
    """What ``python -m servebench_engine.settings`` prints (the contract C1)."""
    rows = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        limit = meta["max"]
        rows.append({
            "name": f.name, "flag": flag(f), "knob": meta["knob"], "type": meta["kind"],
            "repeatable": meta["repeatable"],
            "default": [] if meta["repeatable"] else _plain(f.default),
            "min": meta["min"], "max": None if callable(limit) else limit,
            "choices": list(meta["choices"]) if meta["choices"] is not None else None,
            "help": meta["help"],
        })
    return {"settings": rows, "profiles": sorted(PROFILES), "exit_codes": exit_code_table()}


def main() -> int:
    print(json.dumps(table(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
