"""TFLite / LiteRT: the edge option's runtime, with a given or converted ``.tflite`` model.

The model served is, in order: ``--tflite-model`` when given; else the engine's own ONNX model
converted by ``convert_tflite.py`` in the converter's environment (``--tflite-converter-python``:
onnx2torch + litert-torch, float32, NCHW, dynamic batch), so the edge option prices the very
model the servers serve; else the variant is skipped and says which of the two is missing.

The engine hands every variant NCHW float32 batches normalised with the model's mean and std
(its data config; ImageNet's by default). A TensorFlow image model instead takes NHWC pixels,
often quantised (uint8 with a scale and zero point), and expects them scaled to [-1, 1] (the
MobileNet convention). So ``infer`` undoes the engine's normalisation to get pixels back (exact
up to rounding: the same resize and crop), then scales and quantises them as the model's input
tensor says. That conversion is
inside the measured latency, as a server's own input handling would be; its cost is recorded.
A channels-first float model (one converted from PyTorch) gets the engine's batch unchanged; a
channels-first INT8 one (that model quantised, the tflite-int8 variant) gets it quantised with its
input tensor's scale and zero point. Integer outputs are dequantised the same way.

The conversion runs in ``prepare`` (outside the cold start); its route, time and check against
the source model are recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..helpers import CONVERT_TFLITE as CONVERTER_SCRIPT
from ..helpers import SCRIPT_IO
from ..model.data_config import DEFAULT, DataConfig
from ..model.onnx_file import data_config_of
from . import reuse
from .base import Served, Variant, VariantSkipped
from .helper_process import absolute_python, run_for_json

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

CONVERT_TIMEOUT_S = 600  # seen here: 16-20 s for MobileNetV2 on 2 cores


def interpreter_class():
    """LiteRT's interpreter, else the older tflite_runtime's; None when neither is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    return Interpreter


class TfliteModel:
    """One interpreter and the conversions its input and output tensors need."""

    def __init__(self, model_path: Path, threads: int | None = None,
                 config: DataConfig = DEFAULT):
        # The engine's normalisation (data.py), shaped for NCHW batches: undone for NHWC models.
        self._mean = np.asarray(config.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(config.std, dtype=np.float32).reshape(1, 3, 1, 1)
        interpreter = interpreter_class()
        if interpreter is None:
            raise VariantSkipped("no TFLite runtime installed (ai-edge-litert or tflite-runtime)")
        self.runtime = interpreter.__module__.split(".")[0]
        self.interpreter = interpreter(model_path=str(model_path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_details = self.interpreter.get_input_details()[0]
        self.output_details = self.interpreter.get_output_details()[0]
        shape = [int(d) for d in self.input_details["shape"]]
        self.channels_last = shape[-1] == 3
        self.image_size = tuple(shape[1:3] if self.channels_last else shape[2:4])
        signature = self.input_details.get("shape_signature", self.input_details["shape"])
        # A batch dimension of -1 in the signature can be resized; anything else is fixed
        # (resizing a fixed one fails inside the XNNPACK delegate).
        self.max_batch = None if int(signature[0]) == -1 else shape[0]
        self.num_classes = int(self.output_details["shape"][-1])
        self._batch = shape[0]

    def run_engine_batch(self, images: np.ndarray) -> np.ndarray:
        """NCHW normalised float32 (the engine's batches) -> float scores."""
        if not self.channels_last:
            # A channels-first model takes the engine's values as they are: an INT8 one (made
            # from a converted float model) quantised with its input's scale and zero point.
            return self._run(self._quantise(images))
        return self._run(self._model_input(images))

    def _model_input(self, images: np.ndarray) -> np.ndarray:
        pixels = ((images * self._std + self._mean) * 255.0).transpose(0, 2, 3, 1)
        return self._from_pixels(pixels)

    def _from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels scaled to [-1, 1] (TensorFlow's MobileNet convention), then quantised."""
        return self._quantise(pixels / 127.5 - 1.0)

    def conversion_ms(self, images: np.ndarray) -> float:
        """What turning the engine's batch into this model's input costs (best of 5)."""
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter_ns()
            self._model_input(images)
            best = min(best, time.perf_counter_ns() - started)
        return round(best / 1e6, 4)

    def _quantise(self, real: np.ndarray) -> np.ndarray:
        dtype = self.input_details["dtype"]
        scale, zero_point = self.input_details["quantization"]
        if not np.issubdtype(dtype, np.integer):
            return real.astype(dtype, copy=False)
        limits = np.iinfo(dtype)
        return np.clip(np.round(real / scale + zero_point), limits.min, limits.max).astype(dtype)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        step = self.max_batch or len(batch)
        outputs = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            if len(chunk) != self._batch:
                self.interpreter.resize_tensor_input(self.input_details["index"], [len(chunk), *chunk.shape[1:]])
                self.interpreter.allocate_tensors()
                self._batch = len(chunk)
            self.interpreter.set_tensor(self.input_details["index"], np.ascontiguousarray(chunk))
            self.interpreter.invoke()
            outputs.append(self._dequantise(self.interpreter.get_tensor(self.output_details["index"])))
        return np.concatenate(outputs)

    def _dequantise(self, out: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output_details["quantization"]
        if np.issubdtype(out.dtype, np.integer) and scale:
            return ((out.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return out.astype(np.float32, copy=True)


def require_runtime() -> None:
    if interpreter_class() is None:
        raise VariantSkipped("no TFLite runtime installed (ai-edge-litert or tflite-runtime)")


def describe(model: TfliteModel, ctx: "Context", source: str) -> dict[str, object]:
    """Check ``model`` against the engine's data (its image size) and describe it for the
    record: ``route`` (``source`` says where the file came from), runtime, input type and layout,
    and why accuracy cannot be scored when its classes are not the data's."""
    sample = ctx.sample(1)
    if model.image_size != tuple(sample.shape[2:4]):
        raise ValueError(
            f"the .tflite model takes {model.image_size[0]}x{model.image_size[1]} images, "
            f"the engine's data is {sample.shape[2]}x{sample.shape[3]}"
        )
    dtype = np.dtype(model.input_details["dtype"]).name
    layout = "NHWC" if model.channels_last else "NCHW"
    info: dict[str, object] = {
        "route": f"{source} .tflite, {model.runtime} interpreter, {layout} {dtype} input",
        "runtime": model.runtime,
        "input_dtype": dtype,
        "input_layout": layout,
        "model_classes": model.num_classes,
    }
    if model.channels_last:
        info["input_conversion_ms"] = model.conversion_ms(sample)
    if model.num_classes != ctx.num_classes:
        # The engine writes accuracy null with this reason instead of scoring.
        info["accuracy_unavailable"] = (
            f"the .tflite model predicts {model.num_classes} classes, the data set has "
            f"{ctx.num_classes}: its answers cannot be scored against these labels"
        )
    return info


class TfliteVariant(Variant):
    id = "tflite"
    description = "TFLite / LiteRT interpreter with a given or converted .tflite model"
    prepare_estimate_s = 30.0  # the conversion: 17-40 s here

    def __init__(self) -> None:
        self._info: dict[str, object] = {}
        self._model_path: Path | None = None

    def prepare(self, ctx: "Context") -> None:
        """Find or make the model, check it against the data, describe it (outside the cold start)."""
        require_runtime()
        conversion: dict[str, object] = {}
        if ctx.tflite_model is not None:
            self._model_path = ctx.tflite_model
        else:
            self._model_path, conversion, self.reused = convert(ctx)
        model = TfliteModel(self._model_path, ctx.threads, data_config_of(ctx.model_onnx))
        source = f"converted ({conversion['route']})" if conversion else "given"
        self._info = describe(model, ctx, source)
        self._info["tflite_source"] = "converted" if conversion else "given"
        if conversion:
            self._info["conversion"] = conversion

    def load(self, ctx: "Context") -> Served:
        if not self._info or self._model_path is None:
            raise RuntimeError(f"{self.id}: load() before prepare() checked the model")
        model = TfliteModel(self._model_path, ctx.threads, data_config_of(ctx.model_onnx))
        return Served(
            infer=model.run_engine_batch,
            model_path=self._model_path,
            max_batch=model.max_batch,
            info=dict(self._info),
        )


def convert(ctx: "Context") -> tuple[Path, dict[str, object], bool]:
    """The engine's ONNX model as a float32 .tflite, made by convert_tflite.py in its own env
    (or the one an earlier prepare made from the same model); the bool: reused."""
    if ctx.model_is_quantized:
        raise VariantSkipped("the given model is already INT8, which the converter (onnx2torch) "
                             "cannot read: give its float .tflite with --tflite-model")
    if not ctx.tflite_converter_python:
        raise VariantSkipped("no .tflite model given (--tflite-model) and no converter "
                             "environment (--tflite-converter-python; `make bench` builds one)")
    out = ctx.workdir / "model.tflite"
    key = reuse.source_key("tflite", ctx.model_onnx, converter=reuse.sha256_of(CONVERTER_SCRIPT),
                           script_io=reuse.sha256_of(SCRIPT_IO))
    # tflite-int8 quantises this file: when both prepare at once, one converts, the other reuses.
    with reuse.locked(out):
        made = reuse.reusable(out, key)
        if made is not None:
            ctx.log(f"reusing {out.name}, converted by an earlier prepare from the same model")
            return out, made, True
        reuse.forget(out)
        return out, reuse.remember(out, key, _run_converter(ctx, out)), False


def _run_converter(ctx: "Context", out: Path) -> dict[str, object]:
    """convert_tflite.py on the engine's ONNX model, writing ``out``; its JSON result."""
    log_path = ctx.workdir / "tflite-conversion.log"
    command = [str(absolute_python(ctx.tflite_converter_python)), str(CONVERTER_SCRIPT),
               "--onnx", str(ctx.model_onnx), "--out", str(out)]
    result = run_for_json("TFLite conversion", command, ctx.workdir, log_path, CONVERT_TIMEOUT_S,
                          ctx.log)
    ctx.log(f"converted to {out.name}: {result['size_bytes']:,} bytes in {result['seconds']:.1f} s, "
            f"max |diff| vs the source {result['max_abs_diff']:.2g}")
    return result
