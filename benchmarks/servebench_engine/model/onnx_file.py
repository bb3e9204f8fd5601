"""The model's ONNX form: what a given .onnx must be, and what it says about itself.

Validation happens before the run writes anything: a corrupt file or a wrong input shape is the
user's to fix, so it is an :class:`InputError` with one clear line. onnx only: no torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError
from .data_config import DATA_CONFIG_KEY, DEFAULT, DataConfig

INPUT_SHAPE = DEFAULT.input_size
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
    data_config: DataConfig = DEFAULT


def _image_input(model):
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def inspect_onnx(path: Path) -> OnnxFacts:
    """Check an ONNX file serves [N, 3, H, W] float32 -> [N, classes] and describe it.

    Its data config: the one saved in its metadata when servebench exported it, else the
    default recipe at its static input size (224 when the size is symbolic)."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError, ValidationError, ...: all mean "bad file"
        raise InputError(f"{path} is not a valid ONNX model ({first_line(e)}); re-export it "
                         "(torch.onnx.export) or pass a .pth") from None
    inputs = _image_input(model)
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise InputError(f"{path} has {len(inputs)} inputs and {len(model.graph.output)} "
                         "outputs; expected one image input and one logits output")
    dims = _dims(inputs[0])
    # Symbolic or unknown dims are fine (a dynamic batch or size); fixed channels must be 3.
    if len(dims) != 4 or dims[1] not in (3, None) and not isinstance(dims[1], str):
        raise InputError(f"{path} takes input shape {dims}, expected [N, 3, H, W] (NCHW RGB)")
    elem = inputs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise InputError(f"{path} takes {onnx.TensorProto.DataType.Name(elem)} input, "
                         "expected float32 normalised images")
    out_dims = _dims(model.graph.output[0])
    if len(out_dims) != 2 or not isinstance(out_dims[1], int) or out_dims[1] < 2:
        raise InputError(f"{path} returns shape {out_dims}, expected [N, classes]")
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        config = _data_config(meta.get(DATA_CONFIG_KEY), dims[2:])
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    return OnnxFacts(out_dims[1], is_quantized(model), meta.get(RANDOM_WEIGHTS_KEY) == "true",
                     config)


def _data_config(saved: str | None, size: list) -> DataConfig:
    static = all(isinstance(d, int) and d > 0 for d in size)
    if saved is not None:
        try:
            config = DataConfig.from_mapping(json.loads(saved), "onnx metadata")
        except ValueError as e:
            raise InputError(f"its {DATA_CONFIG_KEY} metadata is not JSON ({e})") from None
        if static and tuple(size) != config.size:
            raise InputError(f"its input is {size[0]}x{size[1]} but its {DATA_CONFIG_KEY} "
                             f"metadata says {config.size[0]}x{config.size[1]}")
        return config
    if not static or tuple(size) == DEFAULT.size:
        return DEFAULT
    return DataConfig(input_size=(3, *size), source="onnx input shape")


def data_config_of(path: Path) -> DataConfig:
    """The data config of an ONNX model this engine checked, read cheaply (no checker, no
    external data): what a variant needs to know of the images it is handed."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return _data_config(meta.get(DATA_CONFIG_KEY), _dims(_image_input(model)[0])[2:])


def input_size_of(path: Path) -> tuple[int, int, int]:
    """(C, H, W) of an ONNX model this engine checked (224 square when symbolic)."""
    return data_config_of(path).input_size
