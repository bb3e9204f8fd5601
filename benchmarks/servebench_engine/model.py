"""The model under test: a user's .onnx or .pth, or a random-init MobileNetV2, always as ONNX.

Every variant starts from one ONNX file with a dynamic batch axis (``Context.model_onnx``).
Validation happens here, before the run writes anything: a corrupt file or a wrong input shape
is the user's to fix, so it is an :class:`InputError` with one clear line.

torch is imported only for a .pth or the default model; a node given an .onnx never needs it.
A node given an .onnx with a matching ``torch.export`` program beside it (same stem, ``.pt2``,
written by ``--export-only``) serves the very same weights in the torch variants too, with torch
alone: no torchvision, no user's classes to unpickle, and any torch that reads the archive.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .errors import InputError

INPUT_SHAPE = (3, 224, 224)
OPSET = 17
DEFAULT_CLASSES = 11
EXPORTED_NAME = "model.onnx"
RANDOM_INIT = "random-init"
# The study's architecture: a state_dict of it is accepted as data (load_pth).
MOBILENET_V2 = "torchvision:mobilenet_v2"
# ONNX metadata key marking a random-init export, so a node handed only that file (an edge
# device that cannot export) still records random_weights: true.
RANDOM_WEIGHTS_KEY = "servebench.random_weights"
# A torch.export program saved beside an exported ONNX, and the extra file in it naming that ONNX
# (its sha256), so a stale or foreign .pt2 is never served as the ONNX's twin.
PROGRAM_SUFFIX = ".pt2"
PROGRAM_ONNX_KEY = "servebench.onnx_sha256"
# Largest batch the exported program accepts (torch.export needs a bound for the dynamic axis).
PROGRAM_MAX_BATCH = 1024
# Operators only a quantised graph has (QOperator, QDQ and dynamic-quantisation formats).
QUANT_OPS = {"ConvInteger", "MatMulInteger", "QuantizeLinear", "DequantizeLinear",
             "DynamicQuantizeLinear"}


@dataclass
class PreparedModel:
    onnx_path: Path
    source: str                 # the path given, or "random-init"
    format: str                 # "onnx", "pth" or "random-init"
    random_weights: bool
    sha256: str                 # of the file given (of the exported ONNX for random-init)
    num_classes: int
    is_quantized: bool
    torch_model: Callable[[], Any] | None = None
    # What records, folders and the report call it: the file's stem, "random-init" by default.
    name: str = RANDOM_INIT
    # Its .tflite form, given with --tflite-model (served by the tflite variant as it is).
    tflite_model: Path | None = None

    def describe(self) -> dict:
        program = getattr(self.torch_model, "path", None)
        return {"name": self.name, "source": self.source, "random_weights": self.random_weights,
                "format": self.format, "sha256": self.sha256, "num_classes": self.num_classes,
                "quantized": self.is_quantized, "onnx": self.onnx_path.name,
                "torch_program": program.name if program else None}


class ExportedProgram:
    """Loads the ``torch.export`` program saved beside an ONNX as a fresh eval-mode module.

    ``path`` tells the torch variants to serve (and size) that archive itself."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self):
        torch = _import_torch(f"{self.path.name} (a torch.export program)")
        return torch.export.load(str(self.path)).module()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_quantized(model) -> bool:
    return any(n.op_type in QUANT_OPS or n.op_type.startswith("QLinear") for n in model.graph.node)


def _dims(value_info) -> list[int | str | None]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


class OnnxFacts(NamedTuple):
    num_classes: int
    quantized: bool
    random_weights: bool        # exported by servebench from a random-init network


def inspect_onnx(path: Path) -> OnnxFacts:
    """Check an ONNX file serves [N, 3, 224, 224] float32 -> [N, classes] and describe it."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError, ValidationError, ...: all mean "bad file"
        raise InputError(f"{path} is not a valid ONNX model ({_first_line(e)}); re-export it "
                         "(torch.onnx.export) or pass a .pth") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise InputError(f"{path} has {len(inputs)} inputs and {len(model.graph.output)} "
                         "outputs; expected one image input and one logits output")
    dims = _dims(inputs[0])
    wanted = ["N", *INPUT_SHAPE]
    # Symbolic or unknown dims are fine (a dynamic batch); fixed ones must match.
    shape_ok = len(dims) == 4 and all(d is None or isinstance(d, str) or d == w
                                      for d, w in zip(dims[1:], INPUT_SHAPE, strict=True))
    if not shape_ok:
        raise InputError(f"{path} takes input shape {dims}, expected {wanted} (NCHW, 224x224 RGB)")
    elem = inputs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise InputError(f"{path} takes {onnx.TensorProto.DataType.Name(elem)} input, "
                         "expected float32 ImageNet-normalised images")
    out_dims = _dims(model.graph.output[0])
    if len(out_dims) != 2 or not isinstance(out_dims[1], int) or out_dims[1] < 2:
        raise InputError(f"{path} returns shape {out_dims}, expected [N, classes]")
    random = any(p.key == RANDOM_WEIGHTS_KEY and p.value == "true" for p in model.metadata_props)
    return OnnxFacts(out_dims[1], is_quantized(model), random)


def _import_torch(why: str):
    try:
        import torch
    except ImportError:
        raise InputError(f"{why} needs PyTorch, which is not installed here; "
                         "install torch or pass an exported .onnx with --model") from None
    return torch


def default_mobilenet(num_classes: int = DEFAULT_CLASSES, seed: int = 0):
    """MobileNetV2 with the tutorial's 11-class head, random (seeded) weights, eval mode.

    Straight from the initialiser its BatchNorm statistics are the identity while the random
    convolutions shrink the signal: every image gets logits of ~1e-10 and the same class, which
    would make INT8 calibration and the fp32-agreement check meaningless. A few train-mode passes
    over seeded noise give BatchNorm real statistics (weights stay random; logits then differ
    per image), at the cost of about a second."""
    torch = _import_torch("the default model (no --model given)")
    torch.manual_seed(seed)
    net = build_architecture(MOBILENET_V2, num_classes)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average over the passes below
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(8, *INPUT_SHAPE))
    return net.eval()


def load_pth(path: Path, *, allow_pickle: bool = False):
    """A .pth as an eval-mode module. Read as data (``weights_only=True``): tensors and
    containers, never code. A whole pickled module (the tutorial's ``torch.save(model)``) needs
    the full unpickler, which runs whatever code the file names: only with ``allow_pickle``."""
    torch = _import_torch(f"{path.name} (a PyTorch model)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on the pickle protocol
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise InputError(f"cannot load {path} as a PyTorch file ({_first_line(e)})") from None
        if not allow_pickle:
            named = re.search(r"GLOBAL ([\w.]+)", str(e))
            raise InputError(
                f"{path} is a pickled Python object"
                f"{f' (it names {named[1]})' if named else ''}, not plain weights: loading it "
                "would run code from the file; pass --allow-pickle only for a file you trust, or "
                "give an .onnx or a MobileNetV2 state_dict") from None
        obj = _unpickle(torch, path)
    except Exception as e:
        raise InputError(f"cannot load {path} as a PyTorch file "
                         f"({type(e).__name__}: {_first_line(e)})") from None
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _mobilenet_from_state_dict(torch, path, obj)
    raise InputError(f"{path} holds a {type(obj).__name__}, not a model: give an .onnx, a "
                     "MobileNetV2 state_dict, or a whole module (torch.save(model), then "
                     "--allow-pickle)")


def _unpickle(torch, path: Path):
    """The full unpickler, asked for with allow_pickle: the file's code runs here."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise InputError(f"cannot load {path} as a pickled PyTorch model "
                         f"({type(e).__name__}: {_first_line(e)})") from None


def _mobilenet_from_state_dict(torch, path: Path, state: dict):
    """A state_dict is weights without an architecture. The one architecture taken on trust is
    the study's own, torchvision's MobileNetV2 with any head: accepted only when every key and
    shape matches it exactly (strict), so no other network is served under its name."""
    head = state.get("classifier.1.weight")
    net = None
    if head is not None and head.ndim == 2:
        net = build_architecture(MOBILENET_V2, int(head.shape[0]))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError:
            net = None
    if net is None:
        raise InputError(f"{path} holds a state_dict that is not torchvision's MobileNetV2, and "
                         "a state_dict has no architecture: export the model to ONNX "
                         "(torch.onnx.export) and pass the .onnx")
    return net.eval()


def build_architecture(name: str, num_classes: int):
    """A freshly initialised network of a known architecture, for weights loaded as data."""
    torch = _import_torch(f"the architecture {name}")
    if name != MOBILENET_V2:
        raise InputError(f"unknown architecture {name}")
    try:
        from torchvision.models import mobilenet_v2
    except ImportError:
        raise InputError(f"{name} needs torchvision; install it or pass an .onnx") from None
    net = mobilenet_v2(weights=None)
    net.classifier[1] = torch.nn.Linear(net.last_channel, num_classes)
    return net


def export_onnx(net, dest: Path, metadata: dict[str, str] | None = None) -> Path:
    """Export to ONNX (opset 17, dynamic batch axis), add ``metadata``, then check it.

    The TorchScript-based exporter (``dynamo=False``) takes ~1 s for MobileNetV2 and writes one
    self-contained file; the dynamo exporter takes ~8 s and splits weights into a .data file.
    """
    torch = _import_torch("exporting to ONNX")
    import onnx

    x = torch.zeros(1, *INPUT_SHAPE)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (x,), str(dest), input_names=["input"], output_names=["output"],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    if metadata:
        model = onnx.load(str(dest))
        onnx.helper.set_model_props(model, metadata)
        onnx.save(model, str(dest))
    onnx.checker.check_model(str(dest))
    return dest


def export_program(net, dest: Path, onnx_path: Path) -> Path:
    """Save ``net`` as a torch.export program (dynamic batch) that names ``onnx_path`` as its twin.

    The program holds the graph in ATen operators and the weights: loading it needs torch only
    (a .pt2 saved by torch 2.14.1 loads in 2.13.0), never the classes that built the network."""
    torch = _import_torch("saving a torch.export program")
    batch = torch.export.Dim("batch", min=1, max=PROGRAM_MAX_BATCH)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (torch.zeros(2, *INPUT_SHAPE),),
                                      dynamic_shapes=({0: batch},))
    partial = dest.with_name(f".{dest.stem}.partial{dest.suffix}")  # torch wants the suffix
    torch.export.save(program, str(partial), extra_files={PROGRAM_ONNX_KEY: sha256_of(onnx_path)})
    partial.replace(dest)
    return dest


def program_beside(onnx_path: Path, onnx_sha256: str) -> Path | None:
    """The .pt2 beside ``onnx_path`` when it was saved from the same weights, else None.

    Reads the archive's extra file with zipfile: checking costs no torch import."""
    program = onnx_path.with_suffix(PROGRAM_SUFFIX)
    try:
        with zipfile.ZipFile(program) as archive:
            key = next((n for n in archive.namelist() if n.endswith(f"/extra/{PROGRAM_ONNX_KEY}")),
                       None)
            twin = archive.read(key).decode().strip() if key else None
    except (OSError, zipfile.BadZipFile):
        return None
    return program if twin == onnx_sha256 else None


def _probe_classes(net) -> int:
    torch = _import_torch("probing the model")
    with torch.no_grad():
        out = net(torch.zeros(1, *INPUT_SHAPE))
    if out.ndim != 2:
        raise InputError(f"the model returns shape {tuple(out.shape)}, expected [N, classes]")
    return int(out.shape[1])


def model_name(model: Path | None) -> str:
    """A model's name in records, record keys and artifact folders: its file's stem."""
    return RANDOM_INIT if model is None else model.stem


def prepare_model(model: Path | None, staging: Path, *,
                  allow_pickle: bool = False) -> PreparedModel:
    """Validate the model given (or build the default) and leave its ONNX form in ``staging``.

    ``allow_pickle``: a .pth may be a whole pickled module, whose loading runs its code."""
    if model is None:
        net = default_mobilenet()
        onnx_path = export_onnx(net, staging / EXPORTED_NAME, {RANDOM_WEIGHTS_KEY: "true"})
        return PreparedModel(onnx_path, RANDOM_INIT, RANDOM_INIT, True, sha256_of(onnx_path),
                             DEFAULT_CLASSES, False, lambda: copy.deepcopy(net))
    if not model.is_file():
        raise InputError(f"model file {model} does not exist (pass --model PATH to a .onnx or "
                         ".pth, or leave --model out for a random-init MobileNetV2)")
    suffix = model.suffix.lower()
    if suffix == ".onnx":
        facts = inspect_onnx(model)
        sha = sha256_of(model)
        program = program_beside(model, sha)
        return PreparedModel(model.resolve(), str(model), "onnx", facts.random_weights,
                             sha, facts.num_classes, facts.quantized,
                             ExportedProgram(program.resolve()) if program else None,
                             name=model_name(model))
    if suffix in (".pth", ".pt"):
        net = load_pth(model, allow_pickle=allow_pickle)
        classes = _probe_classes(net)
        try:
            onnx_path = export_onnx(net, staging / EXPORTED_NAME)
        except Exception as e:
            raise InputError(f"cannot export {model} to ONNX: {type(e).__name__}: "
                             f"{_first_line(e)}") from None
        inspect_onnx(onnx_path)  # the export must serve [N,3,224,224] like any given .onnx
        return PreparedModel(onnx_path, str(model), "pth", False, sha256_of(model), classes,
                             False, lambda: load_pth(model, allow_pickle=allow_pickle),
                             name=model_name(model))
    raise InputError(f"model file {model} is neither .onnx nor .pth/.pt")


def torch_source(model, folder: Path, *, allow_pickle: bool = False) -> dict | None:
    """How a child gets the model's torch form, as data: the .pt2 program beside the ONNX, the
    .pth given (unpickled there only with ``allow_pickle``, as here), or the in-memory network's
    state_dict saved in ``folder`` with the architecture that takes it."""
    if model.torch_model is None:
        return None
    program = getattr(model.torch_model, "path", None)
    if program is not None:
        return {"program": str(Path(program).resolve())}
    if model.format == "pth":
        return {"pth": str(Path(model.source).resolve()), "allow_pickle": allow_pickle}
    import torch  # the model was built with torch: it is here

    saved = folder / f"{model.name}.state_dict.pth"
    net = model.torch_model()
    torch.save(net.state_dict(), str(saved))
    return {"state_dict": str(saved), "architecture": MOBILENET_V2,
            "num_classes": model.num_classes}


def torch_factory(source: dict | None):
    """The inverse of :func:`torch_source`, in a worker child: a factory of fresh modules."""
    if source is None:
        return None
    if "program" in source:
        return ExportedProgram(Path(source["program"]))
    if "state_dict" in source:
        return lambda: _rebuild(source)
    path = Path(source["pth"])
    allow = bool(source.get("allow_pickle", False))
    return lambda: load_pth(path, allow_pickle=allow)


def _rebuild(source: dict):
    torch = _import_torch("the model's saved weights")
    net = build_architecture(source["architecture"], int(source["num_classes"]))
    net.load_state_dict(torch.load(source["state_dict"], map_location="cpu", weights_only=True))
    return net.eval()
