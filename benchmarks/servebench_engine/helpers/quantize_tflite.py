"""Quantise a float .tflite to full-integer INT8 (int8 weights, activations, input and output).

    python quantize_tflite.py --tflite FLOAT.tflite --calibration IMAGES.npy --out OUT.tflite

Prints one JSON line ({"route", "seconds", "recipe", "calibration_images", "size_bytes", "ops",
"versions", ...}) and exits 0, or prints one line "quantize_tflite: error: ..." and exits 1.

Route: ai-edge-quantizer's static recipe ``static_wi8_ai8`` (min-max calibration, int8 weights
per channel and int8 activations), calibrated on IMAGES.npy: float32 images exactly as the float
model takes them (for the engine's converted model: NCHW, normalised with the model's mean and
std), fed one image per call. The INT8 model keeps the float model's signature and batch axis
(a dynamic one stays dynamic); its input and output are int8 with a scale and zero point, which
the tflite variants apply (variants/tflite_variant.TfliteModel). MobileNetV2: 8.9 MB float ->
2.7 MB INT8, in 1-2 s on 2 cores.

It runs in the TFLite converter's environment (.venv-litert, where ai-edge-quantizer comes with
litert-torch; the Makefile pins it), never the engine's. Standalone: it imports nothing from the
engine, only its sibling script_io.py. The result is written beside OUT and renamed into place.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # script_io, its sibling, under -I too
from script_io import atomic_output, progress, run_script  # noqa: E402

RECIPE = "static_wi8_ai8"
FLOAT_TYPES = ("float16", "float32", "float64")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("ai-edge-quantizer", "ai-edge-litert", "numpy"):
        try:
            found[package.replace("-", "_")] = version(package)
        except PackageNotFoundError:
            found[package.replace("-", "_")] = None
    return found


def _signature(interpreter) -> tuple[str, str]:
    """The model's one signature and its one input, by name (what the quantiser calibrates)."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ValueError(f"expected one signature in the .tflite, found {len(signatures)} "
                         f"({', '.join(signatures) or 'none'})")
    (name, io), = signatures.items()
    if len(io["inputs"]) != 1:
        raise ValueError(f"expected one input in signature {name!r}, found {len(io['inputs'])}")
    return name, io["inputs"][0]


def _load_calibration(path: Path, interpreter):
    import numpy as np

    images = np.load(path, allow_pickle=False)
    inp = interpreter.get_input_details()[0]
    expected = [int(d) for d in inp.get("shape_signature", inp["shape"])][1:]
    if np.dtype(inp["dtype"]).name not in FLOAT_TYPES:
        raise ValueError(f"the .tflite takes {np.dtype(inp['dtype']).name} input: it is quantised "
                         "already (give its float form)")
    if images.ndim != 1 + len(expected) or len(images) == 0:
        raise ValueError(f"the calibration images are {list(images.shape)}: expected "
                         f"[N>0, {', '.join(map(str, expected))}]")
    if list(images.shape[1:]) != expected:
        raise ValueError(f"the .tflite takes images of {expected}, the calibration images are "
                         f"{list(images.shape[1:])}")
    if not np.isfinite(images).all():
        raise ValueError("the calibration images hold NaN or infinite values")
    return np.ascontiguousarray(images, dtype=np.dtype(inp["dtype"]))


def op_counts(model: Path) -> dict[str, object]:
    """The model's operators: how many compute in int8 (no float tensor in or out), how many
    touch a float tensor (QUANTIZE / DEQUANTIZE at the edges included), and each type's count."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    ops = Interpreter(model_path=str(model))._get_ops_details()
    kinds = Counter()
    for op in ops:
        types = {np.dtype(t).name for t in [*op["operand_types"], *op["result_types"]]}
        kinds["float" if types & set(FLOAT_TYPES) else "int8" if "int8" in types else "other"] += 1
    return {"total": len(ops), "int8": kinds["int8"], "float": kinds["float"],
            "other": kinds["other"], "by_type": dict(sorted(Counter(o["op_name"] for o in ops).items()))}


def _io(model: Path) -> dict[str, object]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {"input_dtype": np.dtype(inp["dtype"]).name, "output_dtype": np.dtype(out["dtype"]).name,
            "input_quantization": [float(inp["quantization"][0]), int(inp["quantization"][1])],
            "input_shape_signature": [int(d) for d in inp["shape_signature"]]}


def _run(tflite: Path, calibration: Path, out: Path) -> dict[str, object]:
    for path in (tflite, calibration):
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    signature, input_name = _signature(Interpreter(model_path=str(tflite)))
    images = _load_calibration(calibration, Interpreter(model_path=str(tflite)))
    progress(f"quantising {tflite.name} to INT8 (ai-edge-quantizer {RECIPE}, "
             f"{len(images)} calibration images)")
    qt = quantizer.Quantizer(str(tflite))
    qt.load_quantization_recipe(getattr(recipe, RECIPE)())
    # One image per call: the float model's batch axis may be fixed at 1.
    calibration_data = {signature: [{input_name: image[None]} for image in images]}
    result = qt.quantize(qt.calibrate(calibration_data))
    with atomic_output(out) as tmp:
        result.export_model(str(tmp), overwrite=True)
        io = _io(tmp)
        if io["input_dtype"] != "int8" or io["output_dtype"] != "int8":
            raise ValueError(f"the quantised model takes {io['input_dtype']} and gives "
                             f"{io['output_dtype']}: not full-integer INT8")
        ops = op_counts(tmp)
    return {
        "route": f"float .tflite -> ai-edge-quantizer ({RECIPE})",
        "recipe": RECIPE,
        "calibration_images": len(images),
        "size_bytes": out.stat().st_size,
        "float_size_bytes": tflite.stat().st_size,
        **io,
        "ops": ops,
        "versions": _versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", required=True, type=Path, help="the float .tflite")
    parser.add_argument("--calibration", required=True, type=Path,
                        help="a .npy of float32 images as the model takes them ([N, ...])")
    parser.add_argument("--out", required=True, type=Path, help="the INT8 .tflite to write")
    args = parser.parse_args(argv)
    return run_script("quantize_tflite", lambda: _run(args.tflite, args.calibration, args.out))


if __name__ == "__main__":
    sys.exit(main())
