"""OpenVINO on the CPU: through ONNX Runtime's OpenVINO execution provider when the installed
onnxruntime has it (the onnxruntime-openvino build), otherwise the OpenVINO runtime directly.

The two are different serving stacks, so the route taken is recorded (``route``, ``runtime``);
when the EP was asked for, a session that runs anything else is an error, never an "OpenVINO"
number measured on ORT's CPU EP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Served, Variant, VariantSkipped
from .onnx_runtime import open_session, served_from, session_options

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

OPENVINO_EP = "OpenVINOExecutionProvider"


class OpenVinoVariant(Variant):
    id = "openvino"
    description = "OpenVINO on the CPU (ONNX Runtime's OpenVINO EP, else the OpenVINO runtime)"

    def load(self, ctx: "Context") -> Served:
        import onnxruntime as ort

        if OPENVINO_EP in ort.get_available_providers():
            return self._load_ep(ctx, ort)
        try:
            import openvino
        except ImportError:
            raise VariantSkipped(
                f"neither onnxruntime's {OPENVINO_EP} (onnxruntime-openvino) nor the openvino "
                "runtime is installed"
            ) from None
        return self._load_runtime(ctx, openvino)

    def _load_ep(self, ctx: "Context", ort) -> Served:
        ep_options = {"device_type": "CPU"}
        if ctx.threads:
            ep_options["num_of_threads"] = str(ctx.threads)
        providers = [(OPENVINO_EP, ep_options)]
        # ORT's default optimisation level, as onnxruntime-openvino users get it; the guard in
        # open_session turns a silent fallback to the CPU EP into an error record.
        session = open_session(ctx.model_onnx, providers, session_options(None, None))
        return served_from(session, ctx.model_onnx, providers, {
            "route": f"onnxruntime {ort.__version__} {OPENVINO_EP} (CPU)",
            "runtime": "onnxruntime-openvino",
        })

    def _load_runtime(self, ctx: "Context", openvino) -> Served:
        core = openvino.Core()
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if ctx.threads:
            config["INFERENCE_NUM_THREADS"] = ctx.threads
        # compile_model reads the ONNX file itself: reading and compiling are the session
        # creation part of the cold start, as for an ORT session.
        compiled = core.compile_model(str(ctx.model_onnx), "CPU", config)
        request = compiled.create_infer_request()

        def infer(images: np.ndarray) -> np.ndarray:
            request.infer({0: images})
            return np.array(request.get_output_tensor(0).data, copy=True)

        return Served(
            infer=infer,
            model_path=ctx.model_onnx,
            info={
                "route": f"openvino {openvino.__version__} runtime (Core.compile_model, CPU)",
                "runtime": "openvino",
                "device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                "config": {k: str(v) for k, v in config.items()},
                # OpenVINO may choose bf16 kernels on CPUs that have them: say what it chose.
                "inference_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")),
            },
        )
