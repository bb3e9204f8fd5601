"""Convert the engine's exported ONNX model to a float32 .tflite, in a separate converter venv.

    python convert_tflite.py --onnx IN.onnx --out OUT.tflite [--batch dynamic|N]

Prints one JSON line ({"route", "seconds", "batch", "input_layout", "max_abs_diff", ...}) and
exits 0, or prints one line "convert_tflite: error: ..." and exits 1.

Route: ONNX -> onnx2torch (a torch.fx GraphModule) -> litert-torch -> .tflite. It starts from the
ONNX file because the engine always has one, whereas a .pth needs the model's classes to unpickle.
It runs in its own venv, never the engine's: litert-torch pulls jax, transformers and torchao, and
onnx2tf (the TensorFlow route) pins numpy 1.26, onnx 1.19 and onnxruntime 1.23. The Makefile
builds that venv (`make .venv-litert/.installed`: LITERT_PACKAGES, then onnx2torch without its
dependencies, so no torchvision: see _stub_torchvision). A CPU build of torch is enough and
saves ~4 GB of CUDA libraries. This file is standalone: it imports nothing from the engine (only
its sibling script_io.py, what the TFLite helpers share), so it can be run from the copied
benchmarks/ folder with that venv's Python.

The result takes NCHW float32 input, as the ONNX model did, so the tflite variant feeds it the
engine's batches unchanged.
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # script_io, its sibling, under -I too
from script_io import atomic_output, progress, run_script  # noqa: E402


def _stub_torchvision() -> None:
    """Let onnx2torch import without torchvision.

    onnx2torch imports torchvision at import time, only for its NMS and RoIAlign converters. PyPI's
    torchvision is built against PyPI's CUDA torch and fails to load beside a +cpu torch, and a
    classifier has neither op; a stub that raises if used is safer than a broken real import."""
    try:
        import torchvision  # noqa: F401
        return
    except Exception:  # ImportError, or RuntimeError from a torchvision built for another torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

    def missing(*_args, **_kwargs):
        raise RuntimeError("this model needs torchvision ops (NMS / RoIAlign); install torchvision")

    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = missing
    tv.ops = ops
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.ops"] = ops


def _flatten_with_free_batch(module):
    """Replace Flatten(start_dim=1) with a reshape to (-1, static size).

    litert-torch 0.10 cannot lower a view whose target shape holds the symbolic batch size
    (torch.flatten gives exactly that; jax rejects the traced shape), but a -1 batch with the
    other dims static lowers fine."""
    import torch

    class BatchFlatten(torch.nn.Module):
        def forward(self, x):
            return x.reshape(-1, math.prod(x.shape[1:]))

    replaced = 0
    for name, child in list(module.named_modules()):
        if isinstance(child, torch.nn.Flatten) and child.start_dim == 1 and child.end_dim == -1:
            parent_name, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent_name) if parent_name else module, attr, BatchFlatten())
            replaced += 1
    return replaced


def _input_shape(onnx_path: Path) -> list[int | None]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ValueError(f"expected one graph input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _convert(net, shape: list[int], batch: int | None):
    """litert-torch conversion; ``batch`` None means a dynamic batch dimension."""
    import torch
    import litert_torch

    if batch is None:
        # An example batch of 1 lets torch.export specialise the dimension to 1 (0/1 specialisation).
        example = torch.zeros(2, *shape[1:])
        dim = torch.export.Dim("batch", min=1, max=4096)
        return litert_torch.convert(net, (example,), dynamic_shapes=({0: dim},))
    return litert_torch.convert(net, (torch.zeros(batch, *shape[1:]),))


def _check(tflite_path: Path, net, shape: list[int]) -> dict[str, object]:
    """Run the .tflite in LiteRT's interpreter against the torch module on a random batch of 2.

    A bad conversion here is usually wildly wrong (wrong layout, dropped op), so a loose bound on
    the difference plus equal top-1 catches it without flagging float reordering."""
    import numpy as np
    import torch
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    interp = Interpreter(model_path=str(tflite_path))
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    got = []
    for i in range(len(x)):
        if int(inp["shape"][0]) != 1:
            interp.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x[i : i + 1])
        interp.invoke()
        got.append(interp.get_tensor(out["index"]).copy())
    got = np.concatenate(got)
    diff = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max()) or 1.0
    top1 = bool((got.argmax(-1) == expected.argmax(-1)).all())
    if diff > 1e-3 * max(1.0, scale) or not top1:
        raise ValueError(f"the .tflite disagrees with the source model (max |diff| {diff:.3g}, "
                         f"top-1 equal: {top1})")
    return {"max_abs_diff": diff, "top1_agree": top1,
            "input_shape_signature": [int(d) for d in inp["shape_signature"]]}


def _run(onnx_path: Path, out: Path, batch: str) -> dict[str, object]:
    fixed = None if batch == "dynamic" else int(batch)
    if fixed is not None and fixed < 1:
        raise ValueError("--batch must be 'dynamic' or a positive integer")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"no such file: {onnx_path}")
    shape = _input_shape(onnx_path)
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"expected an [N, C, H, W] input with static C, H, W, got {shape}")

    _stub_torchvision()
    import onnx2torch
    import litert_torch
    import torch

    progress(f"converting {onnx_path.name}: onnx2torch, then litert-torch (about 20 s)")
    net = onnx2torch.convert(str(onnx_path)).eval()
    flattens = _flatten_with_free_batch(net)
    record: dict[str, object] = {}
    try:
        edge_model = _convert(net, shape, fixed)
    except Exception as e:
        if fixed is not None:
            raise
        # A graph with another batch-dependent reshape cannot be made dynamic; one image per
        # call still serves (the tflite variant then runs a batch as consecutive calls).
        record["note"] = f"dynamic batch failed ({type(e).__name__}); converted with batch 1"
        fixed = 1
        edge_model = _convert(net, shape, fixed)

    with atomic_output(out) as tmp:
        edge_model.export(str(tmp))
        progress("checking the .tflite against the source model in LiteRT's interpreter")
        check = _check(tmp, net, shape)
    return {
        "route": "onnx -> onnx2torch -> litert-torch",
        "batch": "dynamic" if fixed is None else fixed,
        "input_layout": "NCHW",
        "size_bytes": out.stat().st_size,
        "flatten_rewrites": flattens,
        "versions": {"litert_torch": litert_torch.__version__, "torch": torch.__version__},
        **check,
        **record,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--batch", default="dynamic",
                        help="'dynamic' (default; falls back to 1 if that fails) or a fixed size")
    args = parser.parse_args(argv)
    return run_script("convert_tflite", lambda: _run(args.onnx, args.out, args.batch))


if __name__ == "__main__":
    sys.exit(main())
