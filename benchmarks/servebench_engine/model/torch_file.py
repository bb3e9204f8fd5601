"""The model's PyTorch form: .pth files read as data, the random-init MobileNetV2, the export to
ONNX and to a ``torch.export`` program, and how a worker child gets the module back.

A .pth is data: ``torch.load(weights_only=True)`` reads tensors and containers, never code. A
whole pickled module runs code from the file when loaded, so it is taken only with
``allow_pickle`` (bench-run's --allow-pickle), which every worker child honours alike.

A node given an .onnx with a matching ``torch.export`` program beside it (same stem, ``.pt2``,
written by ``--export-only``) serves the very same weights in the torch variants too, with torch
alone: no torchvision, no user's classes to unpickle, and any torch that reads the archive.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

from ..errors import InputError
from . import by_name
from .onnx_file import INPUT_SHAPE, OPSET, first_line, input_size_of, sha256_of

DEFAULT_CLASSES = 11
# The study's architecture: a state_dict of it is accepted as data (load_pth).
MOBILENET_V2 = "torchvision:mobilenet_v2"
# A torch.export program saved beside an exported ONNX, and the extra file in it naming that ONNX
# (its sha256), so a stale or foreign .pt2 is never served as the ONNX's twin.
PROGRAM_SUFFIX = ".pt2"
PROGRAM_ONNX_KEY = "servebench.onnx_sha256"
# Largest batch the exported program accepts (torch.export needs a bound for the dynamic axis).
PROGRAM_MAX_BATCH = 1024


def import_torch(why: str):
    try:
        import torch
    except ImportError:
        raise InputError(f"{why} needs PyTorch, which is not installed here; "
                         "install torch or pass an exported .onnx with --model") from None
    return torch


class ExportedProgram:
    """Loads the ``torch.export`` program saved beside an ONNX as a fresh eval-mode module.

    ``path`` tells the torch variants to serve (and size) that archive itself."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self):
        torch = import_torch(f"{self.path.name} (a torch.export program)")
        return torch.export.load(str(self.path)).module()


def default_mobilenet(num_classes: int = DEFAULT_CLASSES, seed: int = 0):
    """MobileNetV2 with the tutorial's 11-class head, random (seeded) weights, eval mode.

    Straight from the initialiser its BatchNorm statistics are the identity while the random
    convolutions shrink the signal: every image gets logits of ~1e-10 and the same class, which
    would make INT8 calibration and the fp32-agreement check meaningless. A few train-mode passes
    over seeded noise give BatchNorm real statistics (weights stay random; logits then differ
    per image), at the cost of about a second."""
    torch = import_torch("the default model (no --model given)")
    torch.manual_seed(seed)
    return settle_batchnorm(build_architecture(MOBILENET_V2, num_classes), INPUT_SHAPE)


def settle_batchnorm(net, input_shape: tuple[int, ...]):
    """Give a random network's BatchNorm layers real statistics (see default_mobilenet)."""
    torch = import_torch("a random-weights model")
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average over the passes below
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(8, *input_shape))
    return net.eval()


def load_pth(path: Path, *, allow_pickle: bool = False):
    """A .pth as an eval-mode module. Read as data (``weights_only=True``): tensors and
    containers, never code. A whole pickled module (the tutorial's ``torch.save(model)``) needs
    the full unpickler, which runs whatever code the file names: only with ``allow_pickle``."""
    torch = import_torch(f"{path.name} (a PyTorch model)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on the pickle protocol
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise InputError(f"cannot load {path} as a PyTorch file ({first_line(e)})") from None
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
                         f"({type(e).__name__}: {first_line(e)})") from None
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
                         f"({type(e).__name__}: {first_line(e)})") from None


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
    """A freshly initialised network of a known architecture (``hub:NAME``), for weights
    loaded as data."""
    torch = import_torch(f"the architecture {name}")
    if name != MOBILENET_V2:
        spec = by_name.parse(f"{name}{by_name.RANDOM_SUFFIX}")
        if spec is None:
            raise InputError(f"unknown architecture {name}")
        return by_name.build(spec, num_classes)
    try:
        from torchvision.models import mobilenet_v2
    except ImportError:
        raise InputError(f"{name} needs torchvision; install it or pass an .onnx") from None
    net = mobilenet_v2(weights=None)
    net.classifier[1] = torch.nn.Linear(net.last_channel, num_classes)
    return net


def export_onnx(net, dest: Path, metadata: dict[str, str] | None = None,
                input_shape: tuple[int, ...] = INPUT_SHAPE) -> Path:
    """Export to ONNX (opset 17, dynamic batch axis), add ``metadata``, then check it.

    The TorchScript-based exporter (``dynamo=False``) takes ~1 s for MobileNetV2 and writes one
    self-contained file; the dynamo exporter takes ~8 s and splits weights into a .data file.
    """
    torch = import_torch("exporting to ONNX")
    import onnx

    x = torch.zeros(1, *input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (x,), str(dest), input_names=["input"], output_names=["output"],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    model = onnx.load(str(dest))
    folded = _own_initializers(model)
    if metadata:
        onnx.helper.set_model_props(model, metadata)
    if metadata or folded:
        onnx.save(model, str(dest))
    onnx.checker.check_model(str(dest))
    return dest


def _own_initializers(model) -> int:
    """Turn ``Identity(initializer)`` nodes back into initializers of their own; how many.

    The exporter stores a weight equal to another (the zero biases of a freshly initialised
    network, say) once, and the others as Identity nodes reading it. Runtimes fold them away,
    but onnx2torch, the TFLite route's first step, wants a Conv's bias to be an initializer."""
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    folded = [n for n in model.graph.node
              if n.op_type == "Identity" and len(n.input) == 1 and n.input[0] in inits]
    for node in folded:
        own = onnx.TensorProto()
        own.CopyFrom(inits[node.input[0]])
        own.name = node.output[0]
        model.graph.initializer.append(own)
        model.graph.node.remove(node)
    return len(folded)


def export_program(net, dest: Path, onnx_path: Path) -> Path:
    """Save ``net`` as a torch.export program (dynamic batch) that names ``onnx_path`` as its twin.

    The program holds the graph in ATen operators and the weights: loading it needs torch only
    (a .pt2 saved by torch 2.14.1 loads in 2.13.0), never the classes that built the network."""
    torch = import_torch("saving a torch.export program")
    batch = torch.export.Dim("batch", min=1, max=PROGRAM_MAX_BATCH)
    input_shape = input_size_of(onnx_path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (torch.zeros(2, *input_shape),),
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


def probe_classes(net, input_shape: tuple[int, ...] = INPUT_SHAPE) -> int:
    torch = import_torch("probing the model")
    with torch.no_grad():
        out = net(torch.zeros(1, *input_shape))
    if out.ndim != 2:
        raise InputError(f"the model returns shape {tuple(out.shape)}, expected [N, classes]")
    return int(out.shape[1])


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
    return {"state_dict": str(saved), "architecture": model.architecture or MOBILENET_V2,
            "num_classes": model.num_classes,
            "reparameterized": bool(model.reparameterized)}


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
    torch = import_torch("the model's saved weights")
    net = build_architecture(source["architecture"], int(source["num_classes"]))
    if source.get("reparameterized"):  # the fused network's weights need the fused layers
        net, _ = by_name.reparameterize(by_name.parse(source["architecture"] + by_name.RANDOM_SUFFIX),
                                        net.eval())
    net.load_state_dict(torch.load(source["state_dict"], map_location="cpu", weights_only=True))
    return net.eval()
