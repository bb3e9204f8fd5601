"""``bench-run``: benchmark model-serving variants on this machine, one JSON record each.

Everything the user gives is checked before --out is touched (model, data, variant ids, paths),
so bad input leaves no half-made result folder: one line ``error: ...`` and exit status 2.
Exit 0 means the suite ran, even if some variants recorded errors (the records say why);
3 a file could not be read or written (the line names it); 130 interrupted by Ctrl-C, 143 by
SIGTERM (suite.json says interrupted, the finished records stay, temporary folders go); 1 an
unexpected error, a bug (one line; SERVEBENCH_DEBUG=1 for the traceback). errors.ExitCode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
from pathlib import Path

from . import data as data_mod
from .errors import ExitCode, InputError, exit_status
from .model import PROGRAM_SUFFIX, PreparedModel, export_program, prepare_model
from .model import check_names, pair_tflite
from .profiles import PROFILES
from .results import copy_atomic
from .suite import ARTIFACTS, SuiteConfig, run_suite
from .variants import GROUPS, REGISTRY, resolve_selection

HOST_KINDS = ("local", "cpu_server", "gpu_server", "edge")
DATA_ENV = "FOOD11_DATA_DIR"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line like every other input error."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(f"{message} (see bench-run --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bench-run",
        description="Benchmark ways of serving an image classifier on this machine: per variant, "
                    "model size, accuracy, single-sample latency (p50..p99), batch-32 throughput "
                    "and cold start, written as one JSON record per variant plus suite.json.",
        epilog="Variants (--list-variants): " + ", ".join(REGISTRY) + ". Groups: all; cpu (all "
               f"but {', '.join(GROUPS['gpu'])}); gpu. Exit status: 0 the suite ran (variant "
               "errors are in their records), 2 bad input (nothing written), 3 a file could not be "
               "read or written (the message names it), 130 interrupted, 143 terminated "
               "(SIGTERM; finished records kept), 1 a bug (SERVEBENCH_DEBUG=1 for a traceback).",
    )
    p.add_argument("--model", type=Path, metavar="PATH", action="append",
                   help="a model: a .onnx (input [N,3,224,224] float32) or a .pth holding the "
                        "whole pickled module; repeat it to benchmark several side by side (each "
                        "named by its file's stem, which must differ; records then are "
                        "<name>__<variant>.json); default: MobileNetV2 with an 11-class head and "
                        "RANDOM weights (every record says so)")
    p.add_argument("--variants", default="all", metavar="LIST",
                   help="comma-separated variant ids, or all / cpu / gpu (default: all; variants "
                        "this host cannot run are recorded as skipped with the reason)")
    p.add_argument("--profile", choices=list(PROFILES), default="full",
                   help="full: statistically sound (>= 1000 samples and >= 10 s per loop; "
                        "default); quick: ~2 s per loop, for a first look; smoke: tests only")
    p.add_argument("--repeats", type=_positive_int, metavar="N",
                   help="fresh processes per variant, run interleaved (ABC ABC ...); the record "
                        "pools their samples and says whether their medians agree (default: the "
                        "profile's: smoke 1, quick 2, full 3)")
    p.add_argument("--prepare-jobs", type=_positive_int, metavar="N",
                   help="how many slow preparations (INT8 quantisation, TFLite conversion) run "
                        "at once before anything is timed (default: as many as there are usable "
                        "CPUs and 2 GiB of free memory for)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help=f"Food-11 tree DIR/{{training,validation,evaluation}}/class_XX/*.jpg "
                        f"(default: ${DATA_ENV}; with neither, a small synthetic tree, marked "
                        "synthetic in every record)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for <variant>.json, suite.json and artifacts/<model>/ (created)")
    p.add_argument("--tflite-model", type=Path, metavar="PATH", action="append", default=[],
                   help="a .tflite model for the tflite variant (default: the model converted "
                        "with --tflite-converter-python; with neither, tflite is skipped); with "
                        "several --model, one per model, named like it (<model name>.tflite)")
    p.add_argument("--tflite-converter-python", metavar="PATH",
                   help="Python of the TFLite converter environment (onnx2torch + litert-torch; "
                        "`make bench` builds .venv-litert), which turns the model into the "
                        "float32 .tflite the tflite variant serves")
    p.add_argument("--quantizer-python", metavar="PATH",
                   help="Python of the Neural Compressor environment, for the INT8 static variants")
    p.add_argument("--host-label", default=socket.gethostname(), metavar="NAME",
                   help="host name written in each record (default: this machine's host name)")
    p.add_argument("--host-kind", choices=HOST_KINDS, default="local",
                   help="kind of host, for the report's verdict (default: local)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="intra-op threads for every runtime (default: each runtime's own)")
    p.add_argument("--export-only", type=Path, metavar="FILE",
                   help="write the model's ONNX form (checked; the random-init network when no "
                        "--model) to FILE and exit without benchmarking: how a prep host makes "
                        "the one model every edge device then serves")
    p.add_argument("--list-variants", action="store_true",
                   help="print the variant ids and the class of each, and exit")
    return p


def _check_file(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise InputError(f"{what} {path} does not exist or is not a file")
    return path.resolve() if path is not None else None


def _check_python(text: str | None, flag: str, environment: str) -> str | None:
    if text is None:
        return None
    found = shutil.which(text)
    if not found:
        raise InputError(f"{flag} {text} is not an executable (give the python of the "
                         f"{environment} environment)")
    return found


def _check_out(out: Path | None) -> Path:
    if out is None:
        raise InputError("--out DIR is required (where the results go)")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    return out


def _data_root(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def _say(message: str) -> None:
    print(message, flush=True)


def run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_variants:
        for vid, target in REGISTRY.items():
            print(f"{vid:32s} {target}")
        return ExitCode.OK
    model_args: list[Path | None] = args.model or [None]
    if args.export_only is not None:
        if len(model_args) > 1:
            raise InputError("--export-only writes one model: give at most one --model")
        return export_only(model_args[0], args.export_only)
    names = check_names(model_args)
    try:
        variants = resolve_selection(args.variants)
    except ValueError as e:
        raise InputError(str(e)) from None
    out = _check_out(args.out)
    tflites = pair_tflite(names, [_check_file(t, "--tflite-model") for t in args.tflite_model])
    quantizer = _check_python(args.quantizer_python, "--quantizer-python", "Neural Compressor")
    converter = _check_python(args.tflite_converter_python, "--tflite-converter-python",
                              "TFLite converter")
    profile = PROFILES[args.profile]
    data_root = _data_root(args.data)
    if data_root is not None:
        data_mod.check_tree(data_root)  # cheap, so before the model export's seconds

    # Staging holds what is made before --out may be touched (the exported ONNX, the synthetic
    # tree) and lives as long as the suite, since variants read the image files.
    with tempfile.TemporaryDirectory(prefix="servebench-") as tmp:
        staging = Path(tmp)
        models = []
        for arg, name in zip(model_args, names, strict=True):
            _say(f"model: {arg or 'random-init MobileNetV2 (no --model given)'}...")
            (staging / name).mkdir()
            models.append(prepare_model(arg, staging / name))
            models[-1].tflite_model = tflites.get(name)
        classes = {m.num_classes for m in models}
        if len(classes) > 1:
            raise InputError("the models give different numbers of classes ("
                             + ", ".join(f"{m.name}: {m.num_classes}" for m in models)
                             + "); one run scores every model against the same labels")
        num_classes = models[0].num_classes
        if data_root is None:
            data_root = data_mod.make_synthetic_tree(
                staging / "synthetic-food11", num_classes, profile.synthetic_per_class)
            _say("data: no Food-11 tree given, generated a synthetic one "
                 "(accuracy on it means nothing)")
            dataset = data_mod.load_dataset(data_root, profile.images_per_class, synthetic=True)
        else:
            _say(f"data: loading {data_root} (up to {profile.images_per_class} images per class "
                 "per split)...")
            dataset = data_mod.load_dataset(data_root, profile.images_per_class)
        if len(dataset.classes) != num_classes:
            raise InputError(f"the data has {len(dataset.classes)} classes but the model outputs "
                             f"{num_classes}")

        # Everything checked: from here on, --out is written.
        try:
            (out / ARTIFACTS).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create --out {out}: {e.strerror or e}") from None
        models = [_keep_export(m, staging / m.name, out / ARTIFACTS / m.name) for m in models]
        cfg = SuiteConfig(variants=variants, profile=profile, out=out, host=args.host_label,
                          host_kind=args.host_kind, threads=args.threads,
                          quantizer_python=quantizer,
                          tflite_converter_python=converter, repeats=args.repeats,
                          prepare_jobs=args.prepare_jobs)
        run_suite(cfg, models, dataset, log=_say)
    return ExitCode.OK


def export_only(model_arg: Path | None, dest: Path) -> int:
    if dest.exists() and dest.is_dir():
        raise InputError(f"--export-only {dest} is a directory; give the .onnx file to write")
    if not dest.parent.is_dir():
        raise InputError(f"--export-only {dest}: folder {dest.parent} does not exist")
    if not os.access(dest.parent, os.W_OK):
        raise InputError(f"--export-only {dest}: folder {dest.parent} is not writable")
    with tempfile.TemporaryDirectory(prefix="servebench-") as tmp:
        _say(f"model: {model_arg or 'random-init MobileNetV2 (no --model given)'}...")
        model = prepare_model(model_arg, Path(tmp))
        # A reader never sees half a model (a full disk leaves none).
        copy_atomic(model.onnx_path, dest)
        # Its torch.export twin beside it: nodes without torchvision serve the same weights in
        # the torch variants (model.program_beside).
        if model.torch_model is not None:
            export_program(model.torch_model(), dest.with_suffix(PROGRAM_SUFFIX), dest)
    _say(f"exported {dest} ({model.num_classes} classes, "
         f"{'RANDOM' if model.random_weights else 'given'} weights)")
    return ExitCode.OK


def _keep_export(model: PreparedModel, staging: Path, artifacts: Path) -> PreparedModel:
    """An ONNX exported here is an artifact of the run: move it next to the others."""
    if model.onnx_path.parent != staging:
        return model
    artifacts.mkdir(parents=True, exist_ok=True)
    dest = copy_atomic(model.onnx_path, artifacts / model.onnx_path.name)
    model.onnx_path.unlink()
    model.onnx_path = dest
    return model


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: run(argv))
