"""The model's ONNX form: what a given .onnx must be, and what it says about itself.

Validation happens before the run writes anything: a corrupt file or a wrong input shape is the
user's to fix, so it is an :class:`InputError` with one clear line. onnx only: no torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError

INPUT_SHAPE = (3, 224, 224)
OPSET = 17
# ONNX metadata key marking a random-init export, so a node handed only that file (an edge
# device that cannot export) still records random_weights: true.
RANDOM_WEIGHTS_KEY = "servebench.random_weights"
# Operators only a quantised graph has (QOperator, QDQ and dynamic-quantisation formats).
QUANT_OPS = {"ConvInteger", "MatMulInteger", "QuantizeLinear", "DequantizeLinear",
             "DynamicQuantizeLinear"}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def first_line(exc: BaseException) -> str:
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
        raise InputError(f"{path} is not a valid ONNX model ({first_line(e)}); re-export it "
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
