"""The model under test: a user's .onnx or .pth, or a random-init MobileNetV2, always as ONNX,
and the names that keep several models of one run apart.

Every variant starts from one ONNX file with a dynamic batch axis (``Context.model_onnx``).
torch is imported only for a .pth or the default model; a node given an .onnx never needs it.
``onnx_file`` checks and describes ONNX files; ``torch_file`` reads .pth files as data, builds
the default network and exports it.

A model's name is its file's stem (``random-init`` for the default model). It names the model in
every record, its artifacts folder (``artifacts/<name>/``) and, when the run has several models,
the record key ``<name>__<variant>`` (results.record_key). Two models with one name would
overwrite each other's records, so they are refused before anything is written.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from . import by_name
from .data_config import DATA_CONFIG_KEY, DataConfig
from .data_config import DEFAULT as DEFAULT_DATA_CONFIG
from .onnx_file import (INPUT_SHAPE, OPSET, RANDOM_WEIGHTS_KEY, OnnxFacts, first_line,
                        inspect_onnx, is_quantized, sha256_of)
from .torch_file import (DEFAULT_CLASSES, MOBILENET_V2, PROGRAM_ONNX_KEY, PROGRAM_SUFFIX,
                         ExportedProgram, build_architecture, default_mobilenet, export_onnx,
                         export_program, import_torch, load_pth, probe_classes, program_beside,
                         settle_batchnorm, torch_factory, torch_source)

__all__ = [
    "artifacts_dir", "build_architecture", "check_names", "common_data_config", "DATA_CONFIG_KEY",
    "DataConfig", "DEFAULT_CLASSES", "default_mobilenet", "export_onnx", "export_program",
    "EXPORTED_NAME", "ExportedProgram", "import_torch", "INPUT_SHAPE", "inspect_onnx",
    "is_quantized", "load_pth", "MOBILENET_V2", "model_name", "OnnxFacts", "OPSET", "pair_tflite",
    "prepare_model", "PreparedModel", "program_beside", "PROGRAM_ONNX_KEY", "PROGRAM_SUFFIX",
    "RANDOM_INIT", "RANDOM_WEIGHTS_KEY", "sha256_of", "torch_factory", "torch_source",
]

EXPORTED_NAME = "model.onnx"
RANDOM_INIT = "random-init"


@dataclass
class PreparedModel:
    onnx_path: Path
    source: str                 # the path or name given (timm:NAME:random...), or "random-init"
    format: str                 # "onnx", "pth", "timm", "torchvision" or "random-init"
    random_weights: bool
    sha256: str                 # of the file given (of the exported ONNX for random-init)
    num_classes: int
    is_quantized: bool
    torch_model: Callable[[], Any] | None = None
    # What records, folders and the report call it: the file's stem, "random-init" by default.
    name: str = RANDOM_INIT
    # Its .tflite form, given with --tflite-model (served by the tflite variant as it is).
    tflite_model: Path | None = None
    # Its INT8 .tflite, given with --tflite-int8-model (served by tflite-int8, after its gate).
    tflite_int8_model: Path | None = None
    # How it wants its images (input size, mean/std, interpolation, crop).
    data_config: DataConfig = DEFAULT_DATA_CONFIG
    # What builds its network for weights saved as data ("timm:NAME"...); None: not built here.
    architecture: str | None = None
    # Modules timm fused for inference before export (timm.utils.reparameterize_model); None:
    # not a model built by name here.
    reparameterized: int | None = None

    def describe(self) -> dict:
        program = getattr(self.torch_model, "path", None)
        return {"name": self.name, "source": self.source, "random_weights": self.random_weights,
                "format": self.format, "sha256": self.sha256, "num_classes": self.num_classes,
                "quantized": self.is_quantized, "onnx": self.onnx_path.name,
                "torch_program": program.name if program else None,
                "architecture": self.architecture, "reparameterized": self.reparameterized,
                "data_config": self.data_config.describe()}


def model_name(model: Path | None) -> str:
    """A model's name in records, record keys and artifact folders: its file's stem, or the
    NAME of timm:NAME / torchvision:NAME."""
    if model is None:
        return RANDOM_INIT
    spec = by_name.parse(str(model))
    return spec.name if spec else model.stem


def _prepare_named(spec: by_name.ModelName, staging: Path) -> PreparedModel:
    """A timm or torchvision model: pretrained from its hub, or random weights when asked."""
    torch = import_torch(f"--model {spec}")
    torch.manual_seed(0)
    net = by_name.build(spec)
    config = by_name.data_config(spec, net)
    net = settle_batchnorm(net, config.input_size) if spec.random else net.eval()
    net, reparameterized = by_name.reparameterize(spec, net)
    classes = probe_classes(net, config.input_size)
    metadata = {DATA_CONFIG_KEY: config.to_json()}
    if spec.random:
        metadata[RANDOM_WEIGHTS_KEY] = "true"
    try:
        onnx_path = export_onnx(net, staging / EXPORTED_NAME, metadata, config.input_size)
    except Exception as e:
        raise InputError(f"cannot export --model {spec} to ONNX: {type(e).__name__}: "
                         f"{first_line(e)}") from None
    inspect_onnx(onnx_path)
    return PreparedModel(onnx_path, str(spec), spec.hub, spec.random, sha256_of(onnx_path),
                         classes, False, lambda: copy.deepcopy(net), name=spec.name,
                         data_config=config, architecture=spec.architecture,
                         reparameterized=reparameterized)


def prepare_model(model: Path | None, staging: Path, *,
                  allow_pickle: bool = False) -> PreparedModel:
    """Validate the model given (or build the default) and leave its ONNX form in ``staging``.

    ``allow_pickle``: a .pth may be a whole pickled module, whose loading runs its code."""
    if model is None:
        net = default_mobilenet()
        onnx_path = export_onnx(net, staging / EXPORTED_NAME, {RANDOM_WEIGHTS_KEY: "true"})
        return PreparedModel(onnx_path, RANDOM_INIT, RANDOM_INIT, True, sha256_of(onnx_path),
                             DEFAULT_CLASSES, False, lambda: copy.deepcopy(net),
                             architecture=MOBILENET_V2)
    spec = by_name.parse(str(model))
    if spec is not None:
        return _prepare_named(spec, staging)
    if not model.is_file():
        raise InputError(f"model file {model} does not exist (pass --model PATH to a .onnx or "
                         ".pth, a name as timm:NAME or torchvision:NAME (:random for random "
                         "weights), or leave --model out for a random-init MobileNetV2)")
    suffix = model.suffix.lower()
    if suffix == ".onnx":
        facts = inspect_onnx(model)
        sha = sha256_of(model)
        program = program_beside(model, sha)
        return PreparedModel(model.resolve(), str(model), "onnx", facts.random_weights,
                             sha, facts.num_classes, facts.quantized,
                             ExportedProgram(program.resolve()) if program else None,
                             name=model_name(model), data_config=facts.data_config)
    if suffix in (".pth", ".pt"):
        net = load_pth(model, allow_pickle=allow_pickle)
        classes = probe_classes(net)
        try:
            onnx_path = export_onnx(net, staging / EXPORTED_NAME)
        except Exception as e:
            raise InputError(f"cannot export {model} to ONNX: {type(e).__name__}: "
                             f"{first_line(e)}") from None
        inspect_onnx(onnx_path)  # the export must serve [N,3,224,224] like any given .onnx
        return PreparedModel(onnx_path, str(model), "pth", False, sha256_of(model), classes,
                             False, lambda: load_pth(model, allow_pickle=allow_pickle),
                             name=model_name(model))
    raise InputError(f"model file {model} is neither .onnx nor .pth/.pt")


def check_names(paths: Sequence[Path | None]) -> list[str]:
    """The name of each model given (``None``: the default model); an InputError on a clash."""
    names = [model_name(p) for p in paths]
    for path, name in zip(paths, names, strict=True):
        if name in ("", ".", ".."):
            raise InputError(f"--model {path}: its file name gives no usable model name "
                             f"({name!r}); rename the file")
    seen: dict[str, Path | None] = {}
    for path, name in zip(paths, names, strict=True):
        if name in seen:
            first = seen[name] or "the default model"
            raise InputError(f"--model {path} and {first} are both named {name!r} (a model's "
                             "name is its file's stem): rename one so their records stay apart")
        seen[name] = path
    return names


def pair_tflite(names: Sequence[str], tflites: Sequence[Path], flag: str = "--tflite-model",
                suffix: str = ".tflite") -> dict[str, Path]:
    """Each model's --tflite-model (or ``flag``), by name: with one model, the one given
    (whatever its name); with several, the one named ``<model name><suffix>``, since serving one
    .tflite under every model's name would label one model's numbers with the others'."""
    if len(names) == 1:
        if len(tflites) > 1:
            raise InputError(f"{flag} given more than once for one model")
        return {names[0]: tflites[0]} if tflites else {}
    pairs: dict[str, Path] = {}
    for path in tflites:
        name = path.name.removesuffix(suffix) if path.name.endswith(suffix) else path.stem
        if name not in names:
            raise InputError(f"{flag} {path} matches no model: with several models, name "
                             f"each .tflite like its model (one of "
                             f"{', '.join(n + suffix for n in names)})")
        if name in pairs:
            raise InputError(f"{flag} {path} and {pairs[name]} are both for {name}")
        pairs[name] = path
    return pairs


def common_data_config(models: Sequence[PreparedModel]) -> DataConfig:
    """The one preprocessing every model of a run shares (one run feeds each the same images);
    an InputError naming each model's when they differ."""
    wanted = {replace(m.data_config, source="") for m in models}
    if len(wanted) > 1:
        raise InputError("the models want their images preprocessed differently ("
                         + "; ".join(f"{m.name}: {_recipe(m.data_config)}" for m in models)
                         + "); one run feeds every model the same images: run them separately")
    return models[0].data_config


def _recipe(config: DataConfig) -> str:
    h, w = config.size
    mean, std = (tuple(round(v, 3) for v in values) for values in (config.mean, config.std))
    return f"{h}x{w} {config.interpolation}, crop_pct {config.crop_pct:g}, mean {mean}, std {std}"


def artifacts_dir(artifacts_root: Path, model: PreparedModel) -> Path:
    return artifacts_root / model.name
