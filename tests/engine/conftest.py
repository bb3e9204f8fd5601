"""Fixtures of the engine tests: the real shared models, a small ONNX made here, and a way to
run ``bench-run``'s real entry point in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from servebench_engine import cli

SHARED_INT8_SIZE = 2_415_126
SHARED_INT8_SHA256 = "145cc77269f63bb3b2c022ace1588767a68e3e86ac7566d972825c9dedb85348"


@pytest.fixture(scope="session")
def shared_int8(shared_data: Path) -> Path:
    path = shared_data / "models" / "food11_quantized_aggressive.onnx"
    if not path.is_file():
        pytest.skip(f"shared INT8 model missing at {path} (see ../shared/data/README.md)")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def bench_run(capsys):
    """Call the console script's function with arguments; returns its exit code and output."""

    def invoke(*args: str) -> CliResult:
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def make_onnx(path: Path, input_shape: list, out_classes: int = 11) -> Path:
    """A tiny real ONNX graph (global average pool + a linear layer) with the given input shape."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    channels = input_shape[1] if isinstance(input_shape[1], int) else 3
    w = numpy_helper.from_array(np.ones((channels, out_classes), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_classes])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
