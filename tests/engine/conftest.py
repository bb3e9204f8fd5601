"""Fixtures of the engine tests: the real shared models, a small ONNX made here, and a way to
run ``bench-run``'s real entry point in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from servebench_engine import cli
from tests.support.helper_envs import LITERT_PROBE, helper_python
from tests.support.variant_context import make_context, tiny_assets  # noqa: F401

SHARED_INT8_SIZE = 2_415_126
SHARED_INT8_SHA256 = "145cc77269f63bb3b2c022ace1588767a68e3e86ac7566d972825c9dedb85348"


@pytest.fixture(scope="session")
def shared_int8(shared_data: Path) -> Path:
    path = shared_data / "models" / "food11_quantized_aggressive.onnx"
    if not path.is_file():
        pytest.skip(f"shared INT8 model missing at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture
def litert():
    from servebench_engine.variants.tflite_variant import interpreter_class

    if interpreter_class() is None:
        pytest.skip("no TFLite runtime installed (ai-edge-litert or tflite-runtime)")


@pytest.fixture
def converter_python(litert) -> str:
    """The converter environment's Python (`make test` builds it), or a skip saying why not."""
    return helper_python(".venv-litert", LITERT_PROBE)


@pytest.fixture(scope="session")
def converted_tflite(tiny_assets, tmp_path_factory) -> SimpleNamespace:
    """The tiny MobileNetV2 converted to a float .tflite once per session, by the tflite
    variant's first prepare: {ctx, variant} (the conversion takes 15-20 s on two cores).
    Tests read its workdir; one that alters a file works on a copy."""
    from servebench_engine.variants.tflite_variant import TfliteVariant, interpreter_class

    if interpreter_class() is None:
        pytest.skip("no TFLite runtime installed (ai-edge-litert or tflite-runtime)")
    ctx = make_context(tiny_assets, tmp_path_factory.mktemp("converted") / "work",
                       tflite_converter_python=helper_python(".venv-litert", LITERT_PROBE))
    variant = TfliteVariant()
    variant.prepare(ctx)
    return SimpleNamespace(ctx=ctx, variant=variant)


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
