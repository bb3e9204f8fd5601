"""``bench-run``: benchmark model-serving variants on this machine, one JSON record each.

Everything the user gives is checked before --out is touched (model, data, variant ids, paths),
so bad input leaves no half-made result folder: one line ``error: ...`` and exit status 2.
Exit 0 means the suite ran, even if some variants recorded errors (the records say why);
7 a file could not be read or written (the line names it); 130 interrupted by Ctrl-C, 143 by
SIGTERM (suite.json says interrupted, the finished records stay, temporary folders go); 1 an
unexpected error, a bug (one line; SERVEBENCH_DEBUG=1 for the traceback). errors.ExitCode.
The flags are the fields of settings.Settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import data as data_mod
from . import load_mode
from .errors import EXIT_CODES, ExitCode, InputError, exit_status
from .model import PROGRAM_SUFFIX, PreparedModel, export_program, prepare_model
from .model import DataConfig, check_names, common_data_config, pair_tflite
from .profiles import PROFILES, Profile
from .results import copy_atomic
from .settings import DATA_ENV, Settings, add_arguments
from .suite import ARTIFACTS, SuiteConfig, run_suite
from .variants import GROUPS, REGISTRY, resolve_selection
from .variants.quantize_common import budget_for, calibration_images

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line like every other input error."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(f"{message} (see bench-run --help)")


def build_parser(cls: type[Settings] = Settings) -> argparse.ArgumentParser:
    """bench-run's parser: one argument per field of the settings (settings.py)."""
    p = _Parser(
        prog="bench-run",
        description="Benchmark ways of serving an image classifier on this machine: per variant, "
                    "model size, accuracy, single-sample latency (p50..p99), batch-32 throughput "
                    "and cold start, written as one JSON record per variant plus suite.json.",
        epilog="Variants (--list-variants): " + ", ".join(REGISTRY) + ". Groups: all; cpu (all "
               f"but {', '.join(GROUPS['gpu'])}); gpu. Exit status: "
               + "; ".join(f"{code} {meaning}" for code, name, meaning in EXIT_CODES
                           if name in ExitCode.__members__) + ".",
    )
    add_arguments(p, cls)
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
    args = Settings.from_args(build_parser(Settings).parse_args(argv))
    if args.list_variants:
        for vid, target in REGISTRY.items():
            print(f"{vid:32s} {target}")
        return ExitCode.OK
    model_args: list[Path | None] = list(args.model) or [None]
    if args.export_only is not None:
        if len(model_args) > 1:
            raise InputError("--export-only writes one model: give at most one --model")
        return export_only(model_args[0], args.export_only, args.allow_pickle)
    if args.export_calibration is not None:
        if len(model_args) > 1:
            raise InputError("--export-calibration writes one model's images: give at most one "
                             "--model")
        return export_calibration(model_args[0], args.export_calibration, PROFILES[args.profile],
                                  _data_root(args.data), args.allow_pickle)
    names = check_names(model_args)
    try:
        variants = resolve_selection(args.variants)
    except ValueError as e:
        raise InputError(str(e)) from None
    try:
        load_mode.selected(args.load_variants, ())
    except ValueError as e:
        raise InputError(f"--load-variants: {e} (or none)") from None
    out = _check_out(args.out)
    tflites = pair_tflite(names, [_check_file(t, "--tflite-model") for t in args.tflite_model])
    int8_tflites = pair_tflite(
        names, [_check_file(t, "--tflite-int8-model") for t in args.tflite_int8_model],
        "--tflite-int8-model", ".int8.tflite")
    quantizer = _check_python(args.quantizer_python, "--quantizer-python", "Neural Compressor")
    converter = _check_python(args.tflite_converter_python, "--tflite-converter-python",
                              "TFLite converter")
    profile = PROFILES[args.profile]
    settings = dataclasses.replace(args, out=out, quantizer_python=quantizer,
                                   tflite_converter_python=converter)
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
            models.append(prepare_model(arg, staging / name, allow_pickle=args.allow_pickle))
            models[-1].tflite_model = tflites.get(name)
            models[-1].tflite_int8_model = int8_tflites.get(name)
        classes = {m.num_classes for m in models}
        if len(classes) > 1:
            raise InputError("the models give different numbers of classes ("
                             + ", ".join(f"{m.name}: {m.num_classes}" for m in models)
                             + "); one run scores every model against the same labels")
        # The images are preprocessed as the models' own data config says (size, mean/std,
        # interpolation), not a constant: a 256x256 bicubic model gets 256x256 bicubic images.
        dataset = _load_data(data_root, staging, models[0].num_classes, profile,
                             common_data_config(models))

        # Everything checked: from here on, --out is written.
        try:
            (out / ARTIFACTS).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create --out {out}: {e.strerror or e}") from None
        models = [_keep_export(m, staging / m.name, out / ARTIFACTS / m.name) for m in models]
        run_suite(SuiteConfig(settings, variants, profile), models, dataset, log=_say)
    return ExitCode.OK


def _load_data(data_root: Path | None, staging: Path, num_classes: int, profile: Profile,
               config: DataConfig) -> data_mod.Dataset:
    """The validation and evaluation splits from ``data_root``, or from a synthetic tree made in
    ``staging`` when there is none; an InputError when its classes are not the model's."""
    if data_root is None:
        data_root = data_mod.make_synthetic_tree(
            staging / "synthetic-food11", num_classes, profile.synthetic_per_class)
        _say("data: no Food-11 tree given, generated a synthetic one "
             "(accuracy on it means nothing)")
        dataset = data_mod.load_dataset(data_root, profile.images_per_class, synthetic=True,
                                        config=config)
    else:
        _say(f"data: loading {data_root} (up to {profile.images_per_class} images per class "
             "per split)...")
        dataset = data_mod.load_dataset(data_root, profile.images_per_class, config=config)
    if len(dataset.classes) != num_classes:
        raise InputError(f"the data has {len(dataset.classes)} classes but the model outputs "
                         f"{num_classes}")
    return dataset


def _check_dest(dest: Path, flag: str, kind: str) -> None:
    """A file to write: not a folder, in a folder that exists and is writable."""
    if dest.exists() and dest.is_dir():
        raise InputError(f"{flag} {dest} is a directory; give the {kind} file to write")
    if not dest.parent.is_dir():
        raise InputError(f"{flag} {dest}: folder {dest.parent} does not exist")
    if not os.access(dest.parent, os.W_OK):
        raise InputError(f"{flag} {dest}: folder {dest.parent} is not writable")


def export_only(model_arg: Path | None, dest: Path, allow_pickle: bool = False) -> int:
    _check_dest(dest, "--export-only", ".onnx")
    with tempfile.TemporaryDirectory(prefix="servebench-") as tmp:
        _say(f"model: {model_arg or 'random-init MobileNetV2 (no --model given)'}...")
        model = prepare_model(model_arg, Path(tmp), allow_pickle=allow_pickle)
        # A reader never sees half a model (a full disk leaves none).
        copy_atomic(model.onnx_path, dest)
        # Its torch.export twin beside it: nodes without torchvision serve the same weights in
        # the torch variants (model.program_beside).
        if model.torch_model is not None:
            export_program(model.torch_model(), dest.with_suffix(PROGRAM_SUFFIX), dest)
    _say(f"exported {dest} ({model.num_classes} classes, "
         f"{'RANDOM' if model.random_weights else 'given'} weights)")
    return ExitCode.OK


def export_calibration(model_arg: Path | None, dest: Path, profile: Profile,
                       data_root: Path | None, allow_pickle: bool = False) -> int:
    """The images the INT8 variants would calibrate on in a run with ``profile`` and this data,
    as a float32 .npy: what quantize_tflite.py takes on a prep host (playbooks/prepare.yml)."""
    _check_dest(dest, "--export-calibration", ".npy")
    if data_root is not None:
        data_mod.check_tree(data_root)
    with tempfile.TemporaryDirectory(prefix="servebench-") as tmp:
        _say(f"model: {model_arg or 'random-init MobileNetV2 (no --model given)'}...")
        model = prepare_model(model_arg, Path(tmp), allow_pickle=allow_pickle)
        dataset = _load_data(data_root, Path(tmp), model.num_classes, profile, model.data_config)
        images = calibration_images(dataset.splits["validation"].images, budget_for(profile))
        staged = Path(tmp) / "calibration.npy"
        np.save(staged, images, allow_pickle=False)
        copy_atomic(staged, dest)  # a reader never sees half the images
    _say(f"exported {len(images)} calibration images ({profile.name} profile, "
         f"{'synthetic' if dataset.synthetic else dataset.root} data) to {dest}")
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
