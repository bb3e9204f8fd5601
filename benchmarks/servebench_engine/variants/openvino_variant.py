"""OpenVINO on the CPU, as the study's tutorial serves it: the ONNX converted to OpenVINO's IR
(``ov.convert_model`` then ``ov.save_model``: an .xml graph and a .bin of weights) in
``prepare``, and the IR compiled by the OpenVINO runtime (``Core.compile_model``) in ``load``.

Only where the ``openvino`` Python package is absent but the installed onnxruntime has the
OpenVINO execution provider (the onnxruntime-openvino build) is the ONNX served through that EP,
and the record's route says that no IR was made and why. The two are different serving stacks,
so the route taken is recorded (``route``, ``runtime``); when the EP was asked for, a session
that runs anything else is an error, never an "OpenVINO" number measured on ORT's CPU EP.

One route per process, never both: onnxruntime-openvino's bundled libopenvino and the openvino
package's (PyPI) share one soname but not one C++ ABI (cxx11 against the old one, measured with
both at 2025.4.1), so whichever loads first makes the other fail to load.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reuse
from .base import Served, Variant, VariantSkipped
from .onnx_runtime import open_session, served_from, session_options

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

OPENVINO_EP = "OpenVINOExecutionProvider"
# save_model compresses the weights to fp16 unless told not to: the IR then holds other numbers
# than the ONNX every other variant serves, and half the bytes. Served as fp32, a difference from
# the ONNX variants is the runtime's, not a quantisation's (the CPU plugin may still compute in
# bf16 where the CPU has it: the record's inference_precision says so).
COMPRESS_TO_FP16 = False


def runtime_config(threads: int | None) -> dict[str, Any]:
    """What the OpenVINO runtime is compiled with, here and by torch.compile's openvino backend:
    the latency hint (one request at a time, as the timed loops call), and --threads."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def inference_precision(compiled) -> str:
    """The precision a compiled model computes in ("f32", "bf16"): OpenVINO may choose bf16
    kernels on CPUs that have them (AMX, AVX512_BF16) unless told otherwise."""
    return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def ir_weights(xml: Path) -> Path:
    """The .bin that save_model writes beside an .xml (and compile_model reads)."""
    return xml.with_suffix(".bin")


class OpenVinoVariant(Variant):
    id = "openvino"
    description = ("OpenVINO on the CPU: the ONNX converted to OpenVINO IR (fp32) and served by "
                   "the OpenVINO runtime (else ONNX Runtime's OpenVINO EP, no IR)")

    def __init__(self) -> None:
        self._xml: Path | None = None
        self._conversion: dict[str, Any] = {}
        # Why no IR was made (the openvino package is absent); None until prepare() ran.
        self._no_ir: str | None = None

    def ir_path(self, ctx: "Context") -> Path:
        return ctx.workdir / f"{ctx.model_onnx.stem}.openvino.xml"

    def prepare(self, ctx: "Context") -> None:
        try:
            import openvino
        except ImportError as exc:
            self._no_ir = f"the openvino Python package is not installed ({exc})"
            return
        xml = self.ir_path(ctx)
        weights = ir_weights(xml)
        key = reuse.source_key(self.id, ctx.model_onnx, openvino=openvino.__version__,
                               compress_to_fp16=COMPRESS_TO_FP16)
        info = reuse.reusable(xml, key, companions=[weights])
        self.reused = info is not None
        if info is None:
            reuse.forget(xml)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            ctx.log(f"converting {ctx.model_onnx.name} to OpenVINO IR "
                    f"({xml.name} + {weights.name})...")
            started = time.perf_counter()
            model = openvino.convert_model(str(ctx.model_onnx))
            openvino.save_model(model, str(xml), compress_to_fp16=COMPRESS_TO_FP16)
            seconds = time.perf_counter() - started
            sizes = {"xml_bytes": xml.stat().st_size, "bin_bytes": weights.stat().st_size}
            info = reuse.remember(xml, key, {
                "route": "ov.convert_model(onnx) + ov.save_model",
                "openvino": openvino.__version__,
                "compress_to_fp16": COMPRESS_TO_FP16,
                "weights": "fp32, as in the ONNX (compress_to_fp16=False)",
                "seconds": round(seconds, 3),
                "size_bytes": sum(sizes.values()),
                **sizes,
            }, companions=[weights])
        self._xml, self._conversion = xml, info

    def load(self, ctx: "Context") -> Served:
        if self._xml is not None:
            import openvino

            return self._load_ir(ctx, openvino, self._xml)
        if self._no_ir is None:
            raise RuntimeError(f"{self.id}: load() before prepare() made the IR")
        import onnxruntime as ort

        if OPENVINO_EP in ort.get_available_providers():
            return self._load_ep(ctx, ort)
        raise VariantSkipped(
            f"neither the openvino runtime ({self._no_ir}) nor onnxruntime's {OPENVINO_EP} "
            "(onnxruntime-openvino) is installed"
        )

    def _load_ep(self, ctx: "Context", ort) -> Served:
        ep_options = {"device_type": "CPU"}
        if ctx.threads:
            ep_options["num_of_threads"] = str(ctx.threads)
        providers = [(OPENVINO_EP, ep_options)]
        # ORT's default optimisation level, as onnxruntime-openvino users get it; the guard in
        # open_session turns a silent fallback to the CPU EP into an error record.
        session = open_session(ctx.model_onnx, providers, session_options(None, None))
        return served_from(session, ctx.model_onnx, providers, {
            "route": (f"onnxruntime {ort.__version__} {OPENVINO_EP} (CPU), the ONNX served: "
                      f"no IR made, {self._no_ir}"),
            "runtime": "onnxruntime-openvino",
            "ir": None,
            "no_ir_reason": self._no_ir,
        })

    def _load_ir(self, ctx: "Context", openvino, xml: Path) -> Served:
        core = openvino.Core()
        config = runtime_config(ctx.threads)
        # compile_model reads the .xml and its .bin: reading and compiling are the session
        # creation part of the cold start, as for an ORT session.
        compiled = core.compile_model(str(xml), "CPU", config)
        request = compiled.create_infer_request()

        def infer(images: np.ndarray) -> np.ndarray:
            request.infer({0: images})
            return np.array(request.get_output_tensor(0).data, copy=True)

        return Served(
            infer=infer,
            # The .xml: the record's size adds the .bin beside it (variant_run.model_size).
            model_path=xml,
            info={
                "route": (f"openvino {openvino.__version__} runtime, OpenVINO IR ({xml.name} "
                          "+ .bin, converted from the ONNX), Core.compile_model (CPU)"),
                "runtime": "openvino",
                "ir": dict(self._conversion),
                "device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                "config": {k: str(v) for k, v in config.items()},
                "inference_precision": inference_precision(compiled),
            },
        )
